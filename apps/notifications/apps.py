from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from apps.notifications import hooks  # why: hooks import models and tasks, loaded only now

        hooks.register()
