"""How a run executes: units claimed from PostgreSQL, processed by threads, written once, finalized once.

- `run_start`: make one EvalResult row per (item, repetition) — INSERT … ON CONFLICT DO NOTHING, so a
  repeated start changes nothing — and mark the run running.
- `run_work`: threads claim one pending unit at a time (UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)
  with a fresh claim token), run the target (holding a provider slot of the shared Redis limit), score it,
  and write the result in its own transaction guarded by the claim token: a unit is counted exactly once.
  Retryable model errors (429, 5xx, timeouts) put the unit back with a backoff, up to EVALS_MAX_ATTEMPTS.
- `run_finalize`: when no unit is pending or running, compute the aggregates and finish — one transaction
  guarded by the run's status, so two finalizers never both finish.
- `runs_resume_stalled` (beat): a run with no progress for EVALS_STALL_SECONDS gets its dead claims (the
  worker's heartbeat is gone, or the lease expired) put back and new work tasks; only the missing units
  are done again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import connection, connections, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Now
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.heartbeat import HEARTBEAT_KEY
from apps.evals import conf, queue
from apps.evals.evaluators import EvalCase, evaluate, kinds
from apps.evals.limiter import SlotTimeout, redis_client, release_owner_slots, set_owner
from apps.evals.models import DatasetItem, EvalResult, EvalRun, RunStatus, UnitStatus
from apps.evals.summary import compute_summary
from apps.evals.targets import TargetError, get_target
from apps.llm.errors import LlmError

log = logging.getLogger(__name__)
INSERT_BATCH = 5000


def _setting(name: str):
    return conf.get(name)


def max_attempts() -> int:
    return int(_setting("EVALS_MAX_ATTEMPTS"))


def tasks_per_run() -> int:
    return max(1, int(_setting("EVALS_TASKS_PER_RUN")))


def inline_owner() -> str:
    return f"inline:{socket.gethostname()}:{os.getpid()}"


# --- start ----------------------------------------------------------------------------------------------------

def run_start(run_id: int) -> bool:
    """Create the run's units (idempotent) and mark it running. False if the run is gone or over."""
    run = EvalRun.objects.filter(pk=run_id).first()
    if run is None or run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        return False
    items = (DatasetItem.objects.at_revision(run.dataset_id, run.dataset_revision)
             .order_by("position", "id").values_list("id", "position"))
    batch: list[EvalResult] = []
    for item_id, position in items.iterator(chunk_size=INSERT_BATCH):
        for repetition in range(run.repetitions):
            batch.append(EvalResult(run_id=run.pk, item_id=item_id, repetition=repetition, position=position))
        if len(batch) >= INSERT_BATCH:
            EvalResult.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    if batch:
        EvalResult.objects.bulk_create(batch, ignore_conflicts=True)
    total = EvalResult.objects.filter(run_id=run.pk).count()
    now = timezone.now()
    EvalRun.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.RUNNING, started_at=run.started_at or now, progress_total=total, last_progress_at=now)
    return True


def enqueue_work(run_id: int, tasks: int | None = None) -> None:
    run = EvalRun.objects.filter(pk=run_id).only("concurrency").first()
    if run is None:
        return
    count = max(1, min(tasks or tasks_per_run(), run.concurrency))
    threads = max(1, -(-run.concurrency // count))
    for _ in range(count):
        queue.run_work_enqueue(run_id, threads)


# --- claiming and writing ---------------------------------------------------------------------------------------

@dataclass
class Unit:
    id: int
    item_id: int
    repetition: int
    attempts: int
    token: str
    inputs: dict
    expected: str | None
    contexts: list
    tags: list
    metadata: dict
    key: str


_CLAIM_SQL = """
WITH claimed AS (
    UPDATE evals_evalresult r
       SET status = 'running', claim_token = %s, claimed_by = %s, claimed_at = now(), attempts = r.attempts + 1
     WHERE r.id = (
        SELECT u.id FROM evals_evalresult u
         WHERE u.run_id = %s AND u.status = 'pending' AND (u.not_before IS NULL OR u.not_before <= now())
           AND EXISTS (SELECT 1 FROM evals_evalrun e WHERE e.id = %s AND e.status = 'running'
                       AND NOT e.cancel_requested)
         ORDER BY u.id
         LIMIT 1
         FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.item_id, r.repetition, r.attempts
)
SELECT c.id, c.item_id, c.repetition, c.attempts, i.inputs, i.expected, i.contexts, i.tags, i.metadata, i.key
  FROM claimed c JOIN evals_datasetitem i ON i.id = c.item_id
"""


def claim_unit(run_id: int, owner: str) -> Unit | None:
    token = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [token, owner[:200], run_id, run_id])
        row = cursor.fetchone()
    if row is None:
        return None

    def loads(value):
        return json.loads(value) if isinstance(value, str) else value

    return Unit(id=row[0], item_id=row[1], repetition=row[2], attempts=row[3], token=token,
                inputs=loads(row[4]) or {}, expected=row[5], contexts=loads(row[6]) or [], tags=list(row[7] or []),
                metadata=loads(row[8]) or {}, key=row[9])


def _waiting_units(run_id: int) -> bool:
    """Units held back by a retry backoff (pending with a not_before in the future), while the run runs."""
    return EvalResult.objects.filter(run_id=run_id, status=UnitStatus.PENDING, not_before__gt=Now(),
                                     run__status=RunStatus.RUNNING, run__cancel_requested=False).exists()


def write_result(run_id: int, unit: Unit, *, status: str, output: str = "", error: str = "", latency_ms=None,
                 cost: Decimal | None = None, unpriced: bool = False, input_tokens: int = 0,
                 output_tokens: int = 0, request_id: str = "", scores: dict | None = None,
                 score: float | None = None, passed: bool | None = None) -> bool:
    """Write one unit's outcome once: only the current claim's holder may, and then the run's counters move."""
    # One statement (atomic by itself, one round trip): the result, then the run's counters if it was written.
    with connection.cursor() as cursor:
        cursor.execute(_WRITE_SQL, [
            status, output, error[:5000], latency_ms, cost, input_tokens, output_tokens, request_id[:100],
            json.dumps(scores or {}), score, passed, unit.id, unit.token,
            1 if status == UnitStatus.ERROR else 0, 1 if unpriced else 0, run_id])
        row = cursor.fetchone()
    return bool(row and row[0])


_WRITE_SQL = """
WITH written AS (
    UPDATE evals_evalresult
       SET status = %s, output = %s, error = %s, latency_ms = %s, cost = %s, input_tokens = %s,
           output_tokens = %s, request_id = %s, scores = %s::jsonb, score = %s, passed = %s, finished_at = now(),
           not_before = NULL
     WHERE id = %s AND claim_token = %s AND status = 'running'
    RETURNING cost
), counted AS (
    UPDATE evals_evalrun
       SET progress_done = progress_done + 1, errors_count = errors_count + %s,
           spend = spend + COALESCE((SELECT cost FROM written), 0), unpriced_calls = unpriced_calls + %s,
           last_progress_at = now()
     WHERE id = %s AND EXISTS (SELECT 1 FROM written)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM written)
"""


def release_for_retry(unit: Unit, error: str, delay: float) -> bool:
    return bool(EvalResult.objects.filter(pk=unit.id, claim_token=unit.token, status=UnitStatus.RUNNING).update(
        status=UnitStatus.PENDING, claim_token="", claimed_by="", claimed_at=None,
        not_before=timezone.now() + timedelta(seconds=delay), error=f"retrying after: {error}"[:5000]))


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    base = float(_setting("EVALS_RETRY_BASE_SECONDS"))
    cap = float(_setting("EVALS_RETRY_CAP_SECONDS"))
    if retry_after is not None:
        return min(cap, max(0.0, retry_after))
    return random.random() * min(cap, base * (2 ** attempt))


# --- processing one unit ----------------------------------------------------------------------------------------

def score_output(definitions, case: EvalCase) -> tuple[dict, float | None, bool | None]:
    scores, values, verdicts = {}, [], []
    for definition in definitions:
        result = evaluate(definition.kind, case, definition.params, definition.threshold)
        scores[str(definition.pk)] = result.as_dict()
        if result.score is not None:
            values.append(result.score)
            verdicts.append(bool(result.passed))
    score = sum(values) / len(values) if values else None
    passed = all(verdicts) if verdicts else None
    return scores, score, passed


def process_unit(run: EvalRun, target, state, definitions, unit: Unit) -> None:
    item = DatasetItem(pk=unit.item_id, dataset_id=run.dataset_id, key=unit.key, inputs=unit.inputs,
                       expected=unit.expected, contexts=unit.contexts, tags=unit.tags, metadata=unit.metadata,
                       added_in=0)
    try:
        out = target.run_fn(run, item, unit.repetition, state)
    except TargetError as exc:
        write_result(run.pk, unit, status=UnitStatus.ERROR, error=str(exc))
        return
    except (LlmError, SlotTimeout) as exc:
        retryable = isinstance(exc, SlotTimeout) or exc.retryable
        if retryable and unit.attempts < max_attempts():
            release_for_retry(unit, str(exc), backoff_seconds(unit.attempts, getattr(exc, "retry_after", None)))
            return
        write_result(run.pk, unit, status=UnitStatus.ERROR, error=f"{type(exc).__name__}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - one item's failure is that item's error, not the run's
        log.exception("eval run %s: item %s failed", run.pk, unit.item_id)
        write_result(run.pk, unit, status=UnitStatus.ERROR, error=f"{type(exc).__name__}: {exc}")
        return
    case = EvalCase(output=out.output or "", expected=unit.expected, inputs=unit.inputs,
                    contexts=out.contexts if out.contexts is not None else unit.contexts,
                    latency_ms=out.latency_ms, cost=out.cost, tags=unit.tags, metadata=unit.metadata,
                    team_id=run.team_id, run_id=run.pk)
    scores, score, passed = score_output(definitions, case)
    write_result(run.pk, unit, status=UnitStatus.DONE, output=out.output or "", latency_ms=out.latency_ms,
                 cost=out.cost, unpriced=out.unpriced, input_tokens=out.input_tokens,
                 output_tokens=out.output_tokens, request_id=out.request_id, scores=scores, score=score,
                 passed=passed)


def _loop(run: EvalRun, target, state, definitions, owner: str, close_connection: bool) -> int:
    set_owner(owner)
    done = 0
    try:
        while True:
            unit = claim_unit(run.pk, owner)
            if unit is None:
                if _waiting_units(run.pk):
                    time.sleep(0.25 + random.random() * 0.25)
                    continue
                return done
            process_unit(run, target, state, definitions, unit)
            done += 1
    finally:
        if close_connection:
            connections.close_all()  # this thread's connections only


def run_work(run_id: int, *, threads: int | None = None, owner: str | None = None) -> int:
    """Process units of one run until none is left to claim; then try to finalize. Returns units processed."""
    kinds()  # load the evaluator registry once, before the threads score concurrently

    run = EvalRun.objects.select_related("team").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return 0
    owner = owner or inline_owner()
    target = get_target(run.target_kind)
    try:
        state = target.prepare_fn(run) if target.prepare_fn else None
    except Exception as exc:  # noqa: BLE001 - the target cannot run at all: fail the run, say why
        run_fail(run_id, f"The target could not be prepared: {type(exc).__name__}: {exc}")
        return 0
    definitions = list(run.evaluators.all())
    count = max(1, threads or run.concurrency)
    if count == 1:
        processed = _loop(run, target, state, definitions, owner, close_connection=False)
    else:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix=f"eval-run-{run_id}") as pool:
            futures = [pool.submit(_loop, run, target, state, definitions, owner, True) for _ in range(count)]
            processed = sum(f.result() for f in futures)
    run_finalize(run_id)
    return processed


def run_execute_inline(run_id: int, *, threads: int | None = None) -> EvalRun:
    """Start and run to the end in this process (the CI command, the demo). Celery is not needed."""
    run_start(run_id)
    run_work(run_id, threads=threads)
    run_finalize(run_id)
    return EvalRun.objects.get(pk=run_id)


# --- finishing ------------------------------------------------------------------------------------------------

def _open_units(run_id: int) -> bool:
    return EvalResult.objects.filter(run_id=run_id, status__in=[UnitStatus.PENDING, UnitStatus.RUNNING]).exists()


def run_finalize(run_id: int) -> bool:
    """Finish the run if every unit is written. Idempotent; exactly one caller finishes it."""
    with transaction.atomic():
        run = EvalRun.objects.select_for_update().filter(pk=run_id, status=RunStatus.RUNNING).first()
        if run is None or _open_units(run_id):
            return False
        totals = EvalResult.objects.filter(run_id=run_id).aggregate(
            units=Count("id"), errors=Count("id", filter=Q(status=UnitStatus.ERROR)), spend=Sum("cost"))
        summary = compute_summary(run)
        run.summary = summary
        run.pass_rate = summary["overall"]["pass_rate"]
        run.mean_score = summary["overall"]["mean_score"]
        run.progress_total = totals["units"]
        run.progress_done = totals["units"]
        run.errors_count = totals["errors"]
        run.spend = totals["spend"] or Decimal(0)
        run.status = RunStatus.FINISHED if totals["errors"] < totals["units"] else RunStatus.FAILED
        if run.status == RunStatus.FAILED:
            run.error = "Every item failed: see the item errors (the model, the target or the inputs)."
        run.finished_at = timezone.now()
        run.save(update_fields=["summary", "pass_rate", "mean_score", "progress_total", "progress_done",
                                "errors_count", "spend", "status", "error", "finished_at"])
        audit_record(action="eval.run.finish", obj=run, team=run.team, object_repr=str(run)[:200],
                     changes={"status": run.status, "units": totals["units"], "errors": totals["errors"],
                              "pass_rate": run.pass_rate, "spend": str(run.spend)})
    return True


def run_fail(run_id: int, message: str) -> None:
    with transaction.atomic():
        run = EvalRun.objects.select_for_update().filter(
            pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first()
        if run is None:
            return
        run.status = RunStatus.FAILED
        run.error = message[:5000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        audit_record(action="eval.run.fail", obj=run, team=run.team, object_repr=str(run)[:200],
                     changes={"status": run.status, "error": message[:500]})


# --- resuming -------------------------------------------------------------------------------------------------

def _worker_alive(owner: str) -> bool | None:
    """True/False when we can tell (a Celery worker's heartbeat, a local process), None when we cannot."""
    if owner.startswith("celery:"):
        try:
            return bool(redis_client().exists(HEARTBEAT_KEY.format(hostname=owner.removeprefix("celery:"))))
        except Exception:  # noqa: BLE001
            return None
    if owner.startswith("inline:"):
        _, host, pid = (owner.split(":", 2) + ["", ""])[:3]
        if host != socket.gethostname() or not pid.isdigit():
            return None
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return None


def reclaim_dead_units(run_id: int, *, lease_seconds: float) -> int:
    """Put back units claimed by a dead worker, or held longer than the lease."""
    running = EvalResult.objects.filter(run_id=run_id, status=UnitStatus.RUNNING)
    owners = set(running.values_list("claimed_by", flat=True).distinct())
    dead = [o for o in owners if _worker_alive(o) is False]
    if dead:
        for owner in dead:
            try:
                release_owner_slots(owner)
            except Exception:  # noqa: BLE001 - the slots expire by themselves anyway
                log.warning("could not free the provider slots of %s", owner, exc_info=True)
    expired = timezone.now() - timedelta(seconds=lease_seconds)
    return running.filter(Q(claimed_by__in=dead) | Q(claimed_at__lt=expired)).update(
        status=UnitStatus.PENDING, claim_token="", claimed_by="", claimed_at=None)


def runs_resume_stalled(*, stall_seconds: float | None = None, lease_seconds: float | None = None,
                        enqueue: bool = True) -> list[int]:
    """The beat job: re-queue runs that stopped making progress; only their missing units are done again."""
    stall = float(stall_seconds if stall_seconds is not None else _setting("EVALS_STALL_SECONDS"))
    lease = float(lease_seconds if lease_seconds is not None else _setting("EVALS_CLAIM_LEASE_SECONDS"))
    now = timezone.now()
    cutoff = now - timedelta(seconds=stall)
    resumed: list[int] = []
    queued = EvalRun.objects.filter(status=RunStatus.QUEUED).filter(
        Q(last_progress_at__lt=cutoff) | Q(last_progress_at__isnull=True, created_at__lt=cutoff))
    for run_id in list(queued.values_list("pk", flat=True)):
        EvalRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(last_progress_at=now)
        if enqueue:
            queue.run_start_enqueue(run_id)
        resumed.append(run_id)
    stalled = EvalRun.objects.filter(status=RunStatus.RUNNING, cancel_requested=False).filter(
        Q(last_progress_at__lt=cutoff) | Q(last_progress_at__isnull=True))
    for run_id in list(stalled.values_list("pk", flat=True)):
        reclaimed = reclaim_dead_units(run_id, lease_seconds=lease)
        EvalRun.objects.filter(pk=run_id).update(last_progress_at=now)
        if not _open_units(run_id):
            run_finalize(run_id)
            continue
        if reclaimed:
            log.warning("eval run %s: put back %d unit(s) of dead or expired claims", run_id, reclaimed)
        if enqueue:
            enqueue_work(run_id)
        resumed.append(run_id)
    return resumed
