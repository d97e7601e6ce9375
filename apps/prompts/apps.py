from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "apps.prompts"
    label = "prompts"
    verbose_name = "Prompt catalog"

    def ready(self):
        from apps.prompts import hooks  # why: hooks import models, which are loaded only now

        hooks.register()
