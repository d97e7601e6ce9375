from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "apps.evals"
    label = "evals"
    verbose_name = "Evals"

    def ready(self):
        from apps.evals import gates, targets  # noqa: F401  (targets registers the built-in prompt_version)
        from apps.evals.views import playground_action_url, prompt_panel
        from apps.prompts.registry import (
            register_gate_check,
            register_playground_action,
            register_prompt_panel,
        )

        register_gate_check("eval_gate", "Eval gate passes", gates.eval_gate_check, order=40)
        register_playground_action("evals_save_item", "Save as a dataset item", playground_action_url)
        register_prompt_panel("eval_gate", prompt_panel)
