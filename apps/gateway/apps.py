from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "apps.gateway"
    label = "gateway"
    verbose_name = "LLM gateway"

    def ready(self):
        from apps.gateway import hooks

        hooks.register()
