from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "apps.costs"
    label = "costs"

    def ready(self):
        from apps.costs import hooks  # why: app registry ready only now (hooks import models and tasks)

        hooks.register()
