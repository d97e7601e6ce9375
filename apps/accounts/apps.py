from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from apps.accounts import hooks  # why: hooks import models, which are loaded only now

        hooks.register()
