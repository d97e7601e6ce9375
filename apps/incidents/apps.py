from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "apps.incidents"
    label = "incidents"
    verbose_name = "Incidents"

    def ready(self):
        from apps.incidents import hooks  # why: models are loaded only once ready() runs

        hooks.register()
