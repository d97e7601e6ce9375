from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"

    def ready(self):
        from apps.llm import hooks

        hooks.register()
