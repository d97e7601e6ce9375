from django.apps import AppConfig


class SlosConfig(AppConfig):
    name = "apps.slos"
    label = "slos"
    verbose_name = "SLOs"

    def ready(self):
        from apps.slos import hooks  # why: models are loaded only once ready() runs

        hooks.register()
