"""Celery tasks: each has an explicit name equal to its dotted path (renaming a function never renames what is
queued), routes to the queue portal/queues.py names, and retries through the one policy in apps/core/tasks.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from apps.core import tasks as core_tasks
from apps.core.tasks import retry_policy
from portal.celery import app

ROOT = Path(__file__).resolve().parents[2]

# Every task of the portal and the queue it must land on.
EXPECTED_QUEUE = {
    "apps.audit.tasks.audit_chain_verify_task": "default",
    "apps.audit.tasks.audit_chain_verify_scheduled": "default",
    "apps.costs.tasks.budget_alert_notify_task": "default",
    "apps.costs.tasks.cost_anomaly_notify_task": "default",
    "apps.costs.tasks.budgets_check_task": "default",
    "apps.costs.tasks.anomalies_detect_task": "default",
    "apps.costs.tasks.reservations_sweep_task": "default",
    "apps.costs.tasks.rollups_reconcile_task": "default",
    "apps.costs.tasks.raw_events_purge_task": "default",
    "apps.costs.tasks.repricing_job_run_task": "llm",
    "apps.gateway.tasks.gateway_keys_expiry_notify_task": "default",
    "apps.evals.tasks.eval_run_start_task": "llm",
    "apps.evals.tasks.eval_run_work_task": "llm",
    "apps.evals.tasks.eval_runs_resume_stalled_task": "llm",
    "apps.evals.tasks.judge_calibrate_task": "llm",
    "apps.gateway.tasks.gateway_bodies_sweep_task": "default",
    "apps.gateway.tasks.gateway_sli_prune_task": "default",
    "apps.incidents.tasks.mitigations_expiry_sweep_task": "default",
    "apps.experiments.tasks.experiments_verdicts_task": "default",
    "apps.experiments.tasks.experiments_srm_task": "default",
    "apps.incidents.tasks.action_items_remind_task": "default",
    "apps.incidents.tasks.detection_rules_evaluate_task": "default",
    "apps.incidents.tasks.paging_deliver_task": "default",
    "apps.notifications.tasks.notification_email_task": "default",
    "apps.prompts.tasks.webhook_deliver_task": "default",
    "apps.rag.tasks.indexing_job_run_task": "indexing",
    "apps.rag.tasks.retrieval_eval_run_task": "indexing",
    "apps.rag.tasks.indexing_sweep_stuck_task": "indexing",
    "apps.redteam.tasks.campaign_run_task": "llm",
    "apps.redteam.tasks.campaigns_resume_stalled_task": "llm",
    "apps.reviews.tasks.reviews_expiry_sweep_task": "default",
    "apps.reviews.tasks.reviews_conditions_recheck_task": "default",
    "apps.reviews.tasks.reviews_material_change_scan_task": "default",
    "apps.slos.tasks.slos_evaluate_task": "default",
    "apps.scorecards.tasks.scorecards_refresh_task": "default",
    "portal.tasks.heartbeat_probe": "default",
}


def _registered() -> set[str]:
    app.loader.import_default_modules()  # autodiscovery: every INSTALLED_APPS tasks module
    return {name for name in app.tasks if name.startswith(("apps.", "portal."))}


def _queue_of(name: str) -> str:
    return app.amqp.router.route({}, name, args=(), kwargs={})["queue"].name


def test_the_table_lists_every_registered_task():
    assert _registered() == set(EXPECTED_QUEUE)


@pytest.mark.parametrize(("name", "queue"), sorted(EXPECTED_QUEUE.items()))
def test_each_task_routes_to_its_queue(name, queue):
    assert _queue_of(name) == queue


def _task_decorators():
    """(dotted path of the function, the name= given or None) for every @shared_task in apps/ and portal/."""
    for path in [*(ROOT / "apps").rglob("tasks.py"), ROOT / "portal" / "tasks.py"]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if getattr(target, "id", getattr(target, "attr", None)) not in ("shared_task", "task"):
                    continue
                given = None
                if isinstance(deco, ast.Call):
                    given = next((kw.value.value for kw in deco.keywords if kw.arg == "name"), None)
                yield f"{module}.{node.name}", given


def test_every_task_spells_its_name_equal_to_its_dotted_path():
    found = dict(_task_decorators())
    assert set(found) == set(EXPECTED_QUEUE)
    assert {path: given for path, given in found.items() if given != path} == {}


def test_tasks_with_retries_use_the_shared_policy():
    for name in ("apps.costs.tasks.repricing_job_run_task", "apps.notifications.tasks.notification_email_task",
                 "apps.prompts.tasks.webhook_deliver_task", "apps.rag.tasks.indexing_job_run_task"):
        task = app.tasks[name]
        assert task.retry_backoff is True and task.retry_jitter is True, name
        assert task.autoretry_for, name
    assert app.tasks["apps.costs.tasks.repricing_job_run_task"].max_retries == 3
    assert app.tasks["apps.rag.tasks.indexing_job_run_task"].retry_backoff_max == 300


def test_the_retry_policy_needs_errors_to_retry_on():
    with pytest.raises(ValueError):
        retry_policy()
    assert retry_policy(OSError)["autoretry_for"] == (OSError,)


def _queued_by_name():
    """(file:line, name) of every `task_queue("...")` in apps/ and portal/."""
    for path in sorted([*(ROOT / "apps").rglob("*.py"), *(ROOT / "portal").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "task_queue"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node.args[0].value


def test_every_task_queued_by_name_is_registered_at_start_up():
    """Services queue their app's tasks with apps.core.tasks.task_queue(name): each name is a task of the table,
    registered by its app's hooks.register() (a typo or a missing registration fails here, not in production)."""
    queued = dict(_queued_by_name())
    assert queued, "the check found no task_queue call: is it still the way services queue tasks?"
    unknown = {at: name for at, name in queued.items() if name not in EXPECTED_QUEUE or name not in core_tasks._QUEUEABLE}
    assert unknown == {}
