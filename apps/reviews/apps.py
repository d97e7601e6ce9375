from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "apps.reviews"
    label = "reviews"
    verbose_name = "Use-case reviews"

    def ready(self):
        from apps.reviews import hooks  # why: models are loaded only once ready() runs

        hooks.register()
