from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "apps.rag"
    label = "rag"
    verbose_name = "RAG"

    def ready(self):
        from apps.rag import hooks  # why: hooks import models, which are loaded only now

        hooks.register()
