from django.apps import AppConfig


class ScorecardsConfig(AppConfig):
    name = "apps.scorecards"
    label = "scorecards"
    verbose_name = "Scorecards"

    def ready(self):
        from apps.scorecards import hooks  # why: models are loaded only once ready() runs

        hooks.register()
