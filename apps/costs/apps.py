from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "apps.costs"
    label = "costs"

    def ready(self):
        from apps.costs import hooks  # why: hooks import models and tasks, loaded only now

        hooks.register()
