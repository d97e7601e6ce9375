from django.apps import AppConfig


class RedteamConfig(AppConfig):
    name = "apps.redteam"
    label = "redteam"
    verbose_name = "Red team"

    def ready(self):
        from apps.redteam import hooks  # why: models are loaded only once ready() runs

        hooks.register()
