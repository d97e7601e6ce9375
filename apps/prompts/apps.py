from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "apps.prompts"
    label = "prompts"
    verbose_name = "Prompt catalog"

    def ready(self):
        from django.urls import register_converter

        from apps.prompts import converters, registry

        register_converter(converters.PromptNameConverter, "promptname")
        registry.register_builtins()
