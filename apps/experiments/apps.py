from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "apps.experiments"
    label = "experiments"
    verbose_name = "Online experiments"

    def ready(self):
        from apps.experiments import hooks  # why: models are loaded only once ready() runs

        hooks.register()
