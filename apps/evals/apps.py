from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "apps.evals"
    label = "evals"
    verbose_name = "Evals"

    def ready(self):
        from apps.evals import hooks  # why: hooks imports models, not loadable before ready()

        hooks.register()
