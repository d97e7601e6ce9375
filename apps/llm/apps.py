from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"

    def ready(self):
        from apps.llm import hooks  # why: hooks import models, loaded only now

        hooks.register()
