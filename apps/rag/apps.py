from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "apps.rag"
    label = "rag"
    verbose_name = "RAG"

    def ready(self):
        from apps.rag.eval_target import register

        register()  # the evals app runs "a collection configuration" as an eval target
