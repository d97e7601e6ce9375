from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "apps.prompts"
    label = "prompts"
    verbose_name = "Prompt catalog"

    def ready(self):
        from django.urls import register_converter

        from apps.notifications.waiting import register_waiting
        from apps.prompts import converters, notify, registry

        register_converter(converters.PromptNameConverter, "promptname")
        registry.register_builtins()
        register_waiting("prompt.promotion", notify.waiting)
