from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"

    def ready(self):
        from apps.llm import hooks  # why: app registry ready only now (hooks import models)

        hooks.register()
