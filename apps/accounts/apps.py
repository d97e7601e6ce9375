from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from apps.accounts.links import register_links

        register_links()

        from apps.accounts.token_cache import connect_signals

        connect_signals()

        from apps.accounts.ownership import register_accounts_counters

        register_accounts_counters()
