from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self):
        from apps.audit import hooks  # why: hooks import models and tasks, loaded only now

        hooks.register()
