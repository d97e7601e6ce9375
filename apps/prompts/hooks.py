"""What the prompt catalog registers at start-up (the one place; PromptsConfig.ready() calls `register()`).

- the `promptname` URL converter;
- its own gate checks (`lint`, `approvals`) and placeholders for the ones apps above fill in (`use_case`,
  `eval_gate`), into its own registry (apps/prompts/registry.py);
- the "waiting on you" source `prompt.promotion` (apps/notifications/waiting.py);
- the task its services queue by name (apps/core/tasks.py `task_queue`, ADR 0096).
"""

from __future__ import annotations

from django.urls import register_converter

from apps.core.tasks import tasks_register
from apps.notifications.waiting import register_waiting
from apps.prompts import converters, gates, notify, registry, tasks


def register() -> None:
    register_converter(converters.PromptNameConverter, "promptname")
    register_gate_checks()
    register_waiting("prompt.promotion", notify.waiting)
    tasks_register(tasks.webhook_deliver_task)


def register_gate_checks() -> None:
    """Before apps above register theirs (they come later in INSTALLED_APPS); a key already there is kept."""
    if registry.gate_check("lint") is None:
        registry.register_gate_check("lint", "Lint: variables, PII, delimited user input", gates.lint_check,
                                     order=10)
    if registry.gate_check("approvals") is None:
        registry.register_gate_check("approvals", "Approvals from the owning team", gates.approvals_check,
                                     order=20)
    if registry.gate_check("use_case") is None:
        registry.register_placeholder("use_case", "Use case approved, not expired or suspended", "reviews", 30)
    if registry.gate_check("eval_gate") is None:
        registry.register_placeholder("eval_gate", "Eval gate passes", "evals", 40)
