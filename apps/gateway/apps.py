from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "apps.gateway"
    label = "gateway"
    verbose_name = "LLM gateway"

    def ready(self):
        from apps.gateway import hooks  # why: hooks import models, loaded only now

        hooks.register()
