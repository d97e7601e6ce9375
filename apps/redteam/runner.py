"""How a campaign runs (ADR 0111): attacks claimed from PostgreSQL in batches, called concurrently on one
event loop through the async call path (apps/llm/acalls: routes, retries, breakers, prices), written back in
batches with their ledger rows, finalized once.

- `campaign_start`: expand probes × strategies into Attack rows once (INSERT … ON CONFLICT DO NOTHING, so a
  repeated start changes nothing) and mark the campaign running.
- `campaign_work`: one event loop; a feeder claims pending attacks (UPDATE … FOR UPDATE SKIP LOCKED, one claim
  token per batch), `concurrency` workers call the model (each call holds a slot of the provider's shared
  limit, evals' `aprovider_slot`; the team's hard-capped budgets reserve before the call, costs'
  `usage_preflight`), score the output (detectors.py) and queue the result; a flusher writes results, the
  campaign's counters and the calls' ledger rows (costs' `ledger_write`, settling the reservations) every
  FLUSH_SECONDS in one transaction, guarded by the claim token, and reads `cancel_requested` back.
  The loop runs in its own thread; PostgreSQL is touched only by the calling thread (its one connection, the
  task's), which serves the loop's database work in order (`CallerThread`), never from the loop.
- Cancel: the flusher sees the flag, the feeder stops, claimed attacks not started go back to pending,
  in-flight calls land; the campaign ends `cancelled`. Resume (a person, or the beat job for a dead worker):
  claims of dead workers go back to pending and only the missing attacks are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import queue as queues
import random
import socket
import threading
import time
import uuid
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import redis as portal_redis
from apps.costs.budgets import matching_budgets
from apps.costs.ledger import ledger_write
from apps.costs.pricing import PriceBook
from apps.costs.services import usage_preflight
from apps.evals.evaluators import EvalCase, evaluate
from apps.evals.limiter import SlotTimeout, aprovider_slot, limit_for
from apps.evals.models import EvaluatorDefinition
from apps.evals.runner import _worker_alive as worker_alive  # one liveness rule for claims (heartbeat, PID)
from apps.evals.targets import TargetError
from apps.gateway.recording import row_of, serialize
from apps.llm import acalls
from apps.llm.errors import LlmError
from apps.llm.results import ChatRequest
from apps.redteam import detectors, front_door, library_glue, notify, planting, targets
from apps.redteam.models import Attack, AttackStatus, Campaign, CampaignKey, CampaignStatus, TeamProbe
from apps.redteam.summary import compute_summary

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
INSERT_BATCH = 5000


def inline_owner() -> str:
    return f"inline:{socket.gethostname()}:{os.getpid()}"


# --- start ----------------------------------------------------------------------------------------------------

def campaign_probes(campaign: Campaign) -> list[library_glue.ProbeSpec]:
    probes = library_glue.library_probes(campaign.library_version) if campaign.library_version else []
    if campaign.include_team_probes:
        probes += [library_glue.ProbeSpec(id=p.probe_id, category=p.category, text=p.text, owasp=p.owasp,
                                          harm=p.harm, marker=p.marker)
                   for p in TeamProbe.objects.filter(team_id=campaign.team_id)]
    return probes


def campaign_attacks(campaign: Campaign) -> list[library_glue.AttackSpec]:
    return library_glue.expand_attacks(campaign_probes(campaign), list(campaign.strategies), campaign.seed,
                                       canaries=dict(campaign.canaries or {}))


def campaign_start(campaign_id: int) -> bool:
    """Create the campaign's attacks (idempotent) and mark it running. False if it is gone or over."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status not in (CampaignStatus.QUEUED, CampaignStatus.RUNNING):
        return False
    if not Attack.objects.filter(campaign_id=campaign.pk).exists():
        rows = [Attack(campaign_id=campaign.pk, key=spec.key[:300], position=position, probe_id=spec.probe_id[:200],
                       category=spec.category[:80], owasp=spec.owasp[:20], harm=spec.harm[:80],
                       strategy=spec.strategy[:60], text=spec.text, document=spec.document, turns=spec.turns,
                       marker=spec.marker[:200])
                for position, spec in enumerate(campaign_attacks(campaign)[:settings.REDTEAM_MAX_ATTACKS])]
        Attack.objects.bulk_create(rows, batch_size=INSERT_BATCH, ignore_conflicts=True)
    total = Attack.objects.filter(campaign_id=campaign.pk).count()
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk, status__in=[CampaignStatus.QUEUED, CampaignStatus.RUNNING]).update(
        status=CampaignStatus.RUNNING, started_at=campaign.started_at or now, progress_total=total,
        last_progress_at=now)
    return True


# --- claiming and writing (the one DB thread) ---------------------------------------------------------------

# The rows to claim are picked once, in a CTE (a locking CTE is always run exactly once). Picked in an
# `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` subquery instead, a plan that re-scans the subquery (a nested
# loop, chosen on some table statistics) picks n more rows on each re-scan, the ones it just set running being no
# longer pending: a claim of 3 took all 12 attacks of a test campaign now and then.
_CLAIM_SQL = """
WITH picked AS (
    SELECT u.id FROM redteam_attack u
     WHERE u.campaign_id = %s AND u.status = 'pending' AND (u.not_before IS NULL OR u.not_before <= now())
       AND EXISTS (SELECT 1 FROM redteam_campaign c WHERE c.id = %s AND c.status = 'running'
                   AND NOT c.cancel_requested)
     ORDER BY u.position, u.id
     LIMIT %s
     FOR UPDATE SKIP LOCKED
)
UPDATE redteam_attack a
   SET status = 'running', claim_token = %s, claimed_by = %s, claimed_at = now(), attempts = a.attempts + 1
  FROM picked
 WHERE a.id = picked.id
RETURNING a.id, a.key, a.category, a.owasp, a.text, a.document, a.turns, a.marker, a.attempts
"""


def claim_batch(campaign_id: int, owner: str, size: int) -> list[targets.AttackRow]:
    token = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [campaign_id, campaign_id, max(1, size), token, owner[:200]])
        rows = cursor.fetchall()
    return [targets.AttackRow(id=r[0], token=token, key=r[1], category=r[2], owasp=r[3], text=r[4], document=r[5],
                              turns=tuple(json.loads(r[6]) if isinstance(r[6], str) else (r[6] or [])),
                              marker=r[7], attempts=r[8]) for r in sorted(rows, key=lambda r: r[0])]


@dataclass
class Outcome:
    attack: targets.AttackRow
    status: str  # done | error | retry
    output: str = ""
    error: str = ""
    success: bool | None = None
    evidence: dict | None = None
    latency_ms: int | None = None
    cost: Decimal | None = None
    request_id: str = ""
    delay: float = 0.0
    retrieved: planting.Retrieved | None = None  # against a collection: what retrieval gave (ADR 0120)


_WRITE_SQL = """
WITH v AS (
    SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[], %s::text[],
                         %s::int[], %s::numeric[], %s::text[], %s::boolean[], %s::int[])
           AS v(id, token, status, output, error, success, evidence, latency_ms, cost, request_id, planted_retrieved,
                planted_rank)
), written AS (
    UPDATE redteam_attack a
       SET status = v.status, output = v.output, error = v.error, success = v.success,
           evidence = v.evidence::jsonb, latency_ms = v.latency_ms, cost = v.cost, request_id = v.request_id,
           planted_retrieved = v.planted_retrieved, planted_rank = v.planted_rank,
           finished_at = now(), not_before = NULL
      FROM v
     WHERE a.id = v.id AND a.claim_token = v.token AND a.status = 'running'
    RETURNING a.status, a.success, a.cost
)
UPDATE redteam_campaign
   SET progress_done = progress_done + (SELECT count(*) FROM written),
       errors_count = errors_count + (SELECT count(*) FROM written WHERE status = 'error'),
       successes = successes + (SELECT count(*) FROM written WHERE success),
       spend = spend + COALESCE((SELECT sum(cost) FROM written), 0),
       last_progress_at = now()
 WHERE id = %s
RETURNING cancel_requested
"""


def write_batch(campaign_id: int, outcomes: list[Outcome], records: list, key_id: int | None) -> bool:
    """Write finished attacks, put retries back, record the calls on the ledger; one transaction.
    Returns whether a cancel was requested."""
    finished = [o for o in outcomes if o.status != "retry"]
    retries = [o for o in outcomes if o.status == "retry"]
    with transaction.atomic():
        if records:  # priced from one PriceBook for the batch, not one query per row
            prices = PriceBook.load({record.price_name or record.model for record in records})
            rows = [row_of(serialize(record, key_id), prices) for record in records]
            ledger_write(rows, settle=True)
        for outcome in retries:
            Attack.objects.filter(pk=outcome.attack.id, claim_token=outcome.attack.token,
                                  status=AttackStatus.RUNNING).update(
                status=AttackStatus.PENDING, claim_token="", claimed_by="", claimed_at=None,
                not_before=timezone.now() + timedelta(seconds=outcome.delay),
                error=f"retrying after: {outcome.error}"[:5000])
        with connection.cursor() as cursor:
            cursor.execute(_WRITE_SQL, [
                [o.attack.id for o in finished], [o.attack.token for o in finished], [o.status for o in finished],
                [o.output for o in finished], [o.error[:5000] for o in finished], [o.success for o in finished],
                [json.dumps(o.evidence or {}) for o in finished], [o.latency_ms for o in finished],
                [o.cost for o in finished], [o.request_id[:100] for o in finished],
                [o.retrieved.retrieved if o.retrieved else None for o in finished],
                [o.retrieved.rank if o.retrieved else None for o in finished], campaign_id])
            row = cursor.fetchone()
    return bool(row and row[0])


def release(attacks: list[targets.AttackRow]) -> int:
    """Claimed but never started (a cancel): back to pending, the attempt not counted."""
    released = 0
    for attack in attacks:
        released += Attack.objects.filter(pk=attack.id, claim_token=attack.token, status=AttackStatus.RUNNING).update(
            status=AttackStatus.PENDING, claim_token="", claimed_by="", claimed_at=None, attempts=attack.attempts - 1)
    return released


def _waiting(campaign_id: int) -> bool:
    """Attacks still to do while the campaign runs: held back by a retry backoff, or one the last claim missed
    (its backoff ended between the claim and this question, or another worker held its row). Asking only for a
    backoff still running would end the run with such an attack left pending, and the campaign never finishes."""
    return Attack.objects.filter(campaign_id=campaign_id, status=AttackStatus.PENDING,
                                 campaign__status=CampaignStatus.RUNNING,
                                 campaign__cancel_requested=False).exists()


# --- one attack -----------------------------------------------------------------------------------------------

@dataclass
class Scorers:
    policy: list  # evals EvaluatorDefinitions (deterministic policy checks)
    judge: object | None  # an llm_judge EvaluatorDefinition


def _external_scores(scorers: Scorers, attack: targets.AttackRow, output: str, team_id: int) -> tuple[list, dict | None]:
    """evals' evaluators on the output (the judge calls a model: blocking, so this runs in a thread)."""
    try:
        case = EvalCase(output=output, expected=None, inputs={"attack": attack.text}, team_id=team_id,
                        contexts=[attack.document] if attack.document else [])
        policy = []
        for definition in scorers.policy:
            result = evaluate(definition.kind, case, definition.params, definition.threshold)
            policy.append({"name": definition.name, "passed": result.passed, "reason": result.reason})
        judge = None
        if scorers.judge is not None:
            definition = scorers.judge
            result = evaluate(definition.kind, case, definition.params, definition.threshold)
            judge = {"passed": result.passed, "score": result.score, "reason": result.reason}
        return policy, judge
    finally:
        connections.close_all()  # this thread's connections only


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(60.0, max(0.0, retry_after))
    return random.random() * min(60.0, 2.0 * (2 ** attempt))


class CallerThread(Executor):
    """An executor whose work runs on the thread that calls `serve()`: the loop (another thread) hands it its
    database work, so every query uses the caller's connection (and, in tests, its transaction)."""

    def __init__(self):
        self._work: queues.Queue = queues.Queue()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        self._work.put((future, fn, args, kwargs))
        return future

    def serve(self, done: threading.Event) -> None:
        while not (done.is_set() and self._work.empty()):
            try:
                future, fn, args, kwargs = self._work.get(timeout=0.02)
            except queues.Empty:
                continue
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed back to the awaiting coroutine
                future.set_exception(exc)


class Work:
    """One worker task's event loop over one campaign."""

    def __init__(self, campaign: Campaign, target: targets.PreparedTarget, scorers: Scorers, owner: str,
                 door: front_door.FrontDoor | None = None):
        self.campaign = campaign
        self.door = door  # a gateway-key campaign: the target is called through the front door (ADR 0119)
        self.target = target
        self.scorers = scorers
        self.owner = owner
        limit = limit_for(target.provider)
        self.concurrency = max(1, min(campaign.concurrency, limit))
        self.outcomes: list[Outcome] = []
        self.records: list = []
        self.cancel = False
        self.processed = 0
        self.capped = bool(matching_budgets(target.team_id, target.feature, "", target.use_case_id,
                                            capped_only=True))

    async def recorder(self, record) -> None:
        self.records.append(record)

    async def preflight(self, check) -> None:
        if self.capped:  # a hard cap: reserve the worst case like every portal call (released by the ledger)
            await self.db(usage_preflight, context=check.context, model=check.model,
                          worst_case_cost=check.worst_case_cost)

    async def call(self, messages: list[dict], model: str | None = None):
        if self.door is not None and model is None:  # the target, as its application calls it; the gateway records
            return await self.door.call(messages)
        request = ChatRequest(messages=messages, max_tokens=self.target.options.get("max_tokens"))
        return await acalls.achat(model=model or self.target.model, request=request, context=self.target.context(),
                                  recorder=self.recorder, preflight=self.preflight if self.capped else None)

    def verdict(self, attack: targets.AttackRow, output: str, policy=(), judge=None, turns=None):
        return detectors.score(
            detectors.AttackInput(category=attack.category, owasp=attack.owasp, text=attack.text,
                                  marker=attack.marker, document=attack.document,
                                  turns=attack.turns if turns is None else tuple(turns)),
            output, canaries=self.target.canaries, policy=policy, judge=judge)

    async def converse(self, attack: targets.AttackRow, outputs: list[str], context: str | None = None):
        """A live multi-turn attack (ADR 0115): the attacker model writes each user turn from the target's replies,
        up to the planned number of turns, and the conversation stops at the first reply a detector settles as a
        success. Both models' calls go through the one call path, costed to the campaign."""
        attacker = self.target.attacker
        goal = attack.turns[-1] if attack.turns else attack.text  # the planned last turn carries the request
        total = 1 + len(attack.turns)
        history: list[tuple[str, str]] = []
        messages: list[dict] = []
        cost, hit, result = Decimal(0), None, None
        for turn in range(1, total + 1):
            written = await self.call(attacker.messages(goal, turn, total, history), model=attacker.model)
            said = written.text.strip() or goal
            if turn == 1:
                messages = self.target.messages(dataclasses.replace(attack, text=said), context)
            else:
                messages += [{"role": "assistant", "content": result.text}, {"role": "user", "content": said}]
            result = await self.call(messages)
            history += [("user", said), ("assistant", result.text)]
            outputs.append(result.text)
            cost = None if None in (cost, written.cost, result.cost) else cost + written.cost + result.cost
            verdict = self.verdict(attack, result.text, turns=[text for role, text in history if role == "user"])
            if verdict.success:
                hit = verdict.as_evidence() | {"turn": turn}
                break
        transcript = [{"role": "attacker" if role == "user" else "target", "content": text} for role, text in history]
        return cost, result, hit, {"transcript": transcript, "attacker": attacker.source}

    async def attack(self, attack: targets.AttackRow) -> Outcome:
        started = time.perf_counter()
        hit, extra = None, {}
        outputs: list[str] = []  # the target's replies so far (a block at a later turn keeps the earlier ones)
        retrieved = None
        try:
            if attack.document and self.target.rag is not None:  # the collection's retrieval picks the context
                retrieved = await self.db(self.target.rag.retrieve, attack.id, attack.text)
                extra = {"retrieval": retrieved.evidence}
                # what the model was given is the retrieved context: PII in it is not the model's leak
                attack = dataclasses.replace(attack, document=f"{attack.document}\n\n{retrieved.context}")
            context = retrieved.context if retrieved is not None else None
            if self.target.attacker is not None and attack.key.endswith(":multi_turn"):
                cost, result, hit, more = await self.converse(attack, outputs, context)
                extra |= more
            else:
                messages = self.target.messages(attack, context)
                result = await self.call(messages)
                outputs.append(result.text)
                cost = result.cost
                for turn in attack.turns:  # multi-turn, planned: the conversation goes on with the next user turn
                    messages += [{"role": "assistant", "content": result.text}, {"role": "user", "content": turn}]
                    result = await self.call(messages)
                    outputs.append(result.text)
                    cost = None if cost is None or result.cost is None else cost + result.cost
        except TargetError as exc:
            return Outcome(attack, "error", error=str(exc), retrieved=retrieved)
        except front_door.Blocked as exc:
            outcome = self.blocked(attack, outputs, str(exc), started)
            outcome.evidence, outcome.retrieved = (outcome.evidence or {}) | extra, retrieved
            return outcome
        except front_door.NotRun as exc:  # a limit, a budget, the use case: not the attack's result
            return Outcome(attack, "error", error=f"{front_door.NOT_RUN}{exc}")
        except front_door.Retry as exc:
            if attack.attempts < settings.REDTEAM_MAX_ATTEMPTS:
                return Outcome(attack, "retry", error=str(exc), delay=backoff_seconds(attack.attempts, exc.retry_after))
            return Outcome(attack, "error", error=str(exc))
        except (LlmError, SlotTimeout) as exc:
            retryable = isinstance(exc, SlotTimeout) or exc.retryable
            if retryable and attack.attempts < settings.REDTEAM_MAX_ATTEMPTS:
                return Outcome(attack, "retry", error=str(exc),
                               delay=backoff_seconds(attack.attempts, getattr(exc, "retry_after", None)))
            return Outcome(attack, "error", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one attack's failure (a budget refusal…) is that attack's error
            return Outcome(attack, "error", error=f"{type(exc).__name__}: {exc}")
        output = "\n\n".join(outputs)
        if hit is not None:  # a live conversation already stopped at a settled success
            evidence, success = hit, True
        else:
            policy, judge = [], None
            if self.scorers.policy or self.scorers.judge is not None:
                policy, judge = await self.loop.run_in_executor(
                    self.side, _external_scores, self.scorers, attack, output, self.target.team_id)
            written = [t["content"] for t in extra.get("transcript", []) if t["role"] == "attacker"] or None
            verdict = self.verdict(attack, output, policy, judge, turns=written)
            evidence, success = verdict.as_evidence(), verdict.success
        latency = round((time.perf_counter() - started) * 1000)
        return Outcome(attack, "done", output=output, success=success, evidence=evidence | extra,
                       latency_ms=latency, cost=cost, request_id=result.request_id or "", retrieved=retrieved)

    def blocked(self, attack: targets.AttackRow, outputs: list[str], message: str, started: float) -> Outcome:
        """The gateway's guardrails refused a turn: defended, unless an earlier reply already gave the attack away."""
        latency = round((time.perf_counter() - started) * 1000)
        output = "\n\n".join([*outputs, f"[blocked by the gateway: {message}]"])
        if outputs:
            verdict = self.verdict(attack, "\n\n".join(outputs))
            if verdict.success:
                return Outcome(attack, "done", output=output, success=True, latency_ms=latency,
                               evidence=verdict.as_evidence() | {"guardrail": message})
        return Outcome(attack, "done", output=output, success=False, evidence=front_door.blocked_evidence(message),
                       latency_ms=latency)

    async def db(self, fn, *args, **kwargs):
        return await asyncio.wrap_future(self.db_thread.submit(fn, *args, **kwargs))

    async def flush(self) -> None:
        outcomes, self.outcomes = self.outcomes, []
        records, self.records = self.records, []
        if outcomes or records:
            cancel = await self.db(write_batch, self.campaign.pk, outcomes, records, None)
        else:
            cancel = await self.db(_cancel_requested, self.campaign.pk)
        self.cancel = self.cancel or cancel

    def run(self) -> int:
        """Run the loop in a thread while this thread serves its database work; returns attacks processed."""
        self.db_thread = CallerThread()
        done = threading.Event()
        failure: list[BaseException] = []

        def loop_thread() -> None:
            try:
                asyncio.run(self._run())
            except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
                failure.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=loop_thread, name=f"redteam-loop-{self.campaign.pk}", daemon=True)
        thread.start()
        self.db_thread.serve(done)
        thread.join()
        if failure:
            raise failure[0]
        return self.processed

    async def _run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.side = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"redteam-side-{self.campaign.pk}")
        self.queue: asyncio.Queue = asyncio.Queue()
        self.wanted = asyncio.Event()  # a worker finished an attack, or a flush landed: the feeder looks again
        self.unstarted: list[targets.AttackRow] = []
        self.in_flight = 0
        self.finished = False
        self.drained = asyncio.Event()  # no attack in flight or queued (the end, or starved): flush now, not at the tick
        if self.door is not None:
            self.door.open()
        try:
            await asyncio.gather(self.feeder(), self.flusher(), *(self.worker() for _ in range(self.concurrency)))
            await self.flush()
            while not self.queue.empty():
                attack = self.queue.get_nowait()
                if attack is not None:
                    self.unstarted.append(attack)
            if self.unstarted:
                await self.db(release, self.unstarted)
        finally:
            self.side.shutdown(wait=True)
            if self.door is not None:
                await self.door.aclose()
            await portal_redis.close_loop_clients()  # this loop ends here; its Redis connections with it
        return self.processed

    async def feeder(self) -> None:
        queue = self.queue
        while not self.cancel:
            # Refill in batches (one claim for many attacks) and early: when one round is left, top up to three,
            # so a slow flush on the database thread never leaves a worker without an attack.
            room = 3 * self.concurrency - queue.qsize() if queue.qsize() <= self.concurrency else 0
            if room > 0:
                batch = await self.db(claim_batch, self.campaign.pk, self.owner, room)
                for attack in batch:
                    queue.put_nowait(attack)
                if batch:
                    continue
                if self.in_flight == 0 and queue.empty() and not self.outcomes:
                    if not await self.db(_waiting, self.campaign.pk):
                        break
                    await asyncio.sleep(0.25 + random.random() * 0.25)
                    continue
            self.wanted.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wanted.wait(), timeout=0.5)
        self.finished = True
        self.drained.set()
        for _ in range(self.concurrency):
            queue.put_nowait(None)

    async def worker(self) -> None:
        # Each worker holds one slot of the provider's shared limit while it works (refreshed well within its
        # TTL), not one per call: two Redis round trips per attack cost more than the attack's own work.
        while True:
            try:
                async with aprovider_slot(self.target.provider, owner=self.owner,
                                          ttl_seconds=self.target.provider_ttl) as refresh:
                    await self.work(refresh)
                return
            except SlotTimeout:
                log.warning("red-team campaign %s: no provider slot yet, waiting", self.campaign.pk)

    async def work(self, refresh) -> None:
        refreshed = time.monotonic()
        while True:
            attack = await self.queue.get()
            if attack is None:
                return
            if self.cancel:
                self.unstarted.append(attack)
                continue
            # Counted before any await: an attack taken from the queue but not yet counted would let the feeder
            # conclude that nothing is left (queue empty, nothing in flight) and end the run under it.
            self.in_flight += 1
            try:
                if time.monotonic() - refreshed > self.target.provider_ttl / 3:
                    await refresh()
                    refreshed = time.monotonic()
                outcome = await self.attack(attack)  # awaited first: a flush may swap the list meanwhile
                self.outcomes.append(outcome)
                self.processed += 1
            finally:
                self.in_flight -= 1
                self.wanted.set()
                if not self.in_flight and self.queue.empty():
                    self.drained.set()

    async def flusher(self) -> None:
        while not self.finished or self.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout=FLUSH_SECONDS)
            self.drained.clear()
            await self.flush()
            self.wanted.set()  # the feeder may be waiting for these results before it can tell it is done


def _cancel_requested(campaign_id: int) -> bool:
    return bool(Campaign.objects.filter(pk=campaign_id, cancel_requested=True).exists())


def scorers_for(campaign: Campaign) -> Scorers:
    policy = list(EvaluatorDefinition.objects.filter(pk__in=campaign.evaluator_ids or []).order_by("pk"))
    return Scorers(policy=policy, judge=campaign.judge)


def campaign_work(campaign_id: int, *, owner: str | None = None) -> int:
    """Run attacks of one campaign until none is left to claim (or it is cancelled); then finalize."""
    campaign = (Campaign.objects.select_related("prompt_version__prompt", "gateway_key", "judge")
                .filter(pk=campaign_id).first())
    if campaign is None or campaign.status != CampaignStatus.RUNNING:
        return 0
    try:
        target = targets.prepare(campaign)
        target.rag = planting.prepare(campaign, target.context())  # the collection's overlay (ADR 0120)
    except Exception as exc:  # noqa: BLE001 - the target cannot run at all: fail the campaign, say why
        campaign_fail(campaign_id, f"The target could not be prepared: {type(exc).__name__}: {exc}")
        return 0
    owner = owner or inline_owner()
    door, run_key = None, None
    if campaign.gateway_key_id is not None:  # through the front door with a twin of the key (ADR 0119)
        try:
            run_key, secret = front_door.mint(campaign, owner)
        except Exception as exc:  # noqa: BLE001 - the key cannot be copied (revoked, expired): fail, say why
            campaign_fail(campaign_id, f"The gateway key could not be used: {exc}")
            return 0
        door = front_door.FrontDoor(secret, alias=campaign.model, max_tokens=target.options.get("max_tokens"),
                                    concurrency=campaign.concurrency)
        del secret
    try:
        processed = Work(campaign, target, scorers_for(campaign), owner, door).run()
    finally:
        if run_key is not None:
            front_door.revoke([run_key])
    if campaign_finalize(campaign_id):
        planting.cleanup(campaign_id)  # the planted documents go with the run
    return processed


def campaign_execute_inline(campaign_id: int) -> Campaign:
    """Start and run to the end in this process (tests, the bench, the demo)."""
    campaign_start(campaign_id)
    campaign_work(campaign_id)
    campaign_finalize(campaign_id)
    return Campaign.objects.get(pk=campaign_id)


# --- finishing ------------------------------------------------------------------------------------------------

def campaign_finalize(campaign_id: int) -> bool:
    """Finish (or, after a cancel, stop) the campaign once no attack is in flight. Idempotent."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id, status=CampaignStatus.RUNNING).first()
        if campaign is None:
            return False
        attacks = Attack.objects.filter(campaign_id=campaign_id)
        if attacks.filter(status=AttackStatus.RUNNING).exists():
            return False
        pending = attacks.filter(status=AttackStatus.PENDING).exists()
        if pending and not campaign.cancel_requested:
            return False
        ledger_spend = None
        if campaign.gateway_key_id is not None or campaign.run_keys.exists():
            ledger_spend = front_door.read_back_costs(campaign_id)  # the gateway recorded them; the runner did not
        totals = attacks.aggregate(done=Count("id", filter=~Q(status=AttackStatus.PENDING)),
                                   errors=Count("id", filter=Q(status=AttackStatus.ERROR)),
                                   successes=Count("id", filter=Q(success=True)), spend=Sum("cost"))
        campaign.summary = compute_summary(campaign_id)
        campaign.progress_done = totals["done"]
        campaign.errors_count = totals["errors"]
        campaign.successes = totals["successes"]
        campaign.spend = (ledger_spend if ledger_spend is not None else totals["spend"]) or Decimal(0)
        if pending:
            campaign.status = CampaignStatus.CANCELLED
        elif campaign.progress_total and totals["errors"] >= campaign.progress_total:
            campaign.status = CampaignStatus.FAILED
            campaign.error = "Every attack failed: see the attacks' errors (the model, the target or a budget)."
        else:
            campaign.status = CampaignStatus.FINISHED
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["summary", "progress_done", "errors_count", "successes", "spend", "status",
                                     "error", "finished_at"])
        audit_record(action=f"redteam.campaign.{campaign.status}", obj=campaign, team=campaign.team,
                     object_repr=str(campaign)[:200],
                     changes={"status": campaign.status, "attacks": totals["done"], "successes": totals["successes"],
                              "errors": totals["errors"], "asr": campaign.summary["overall"]["asr"],
                              "spend": str(campaign.spend)})
        if campaign.status == CampaignStatus.FINISHED and campaign.successes:
            transaction.on_commit(lambda: notify.campaign_findings(campaign))
    return True


def campaign_fail(campaign_id: int, message: str) -> None:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(
            pk=campaign_id, status__in=[CampaignStatus.QUEUED, CampaignStatus.RUNNING]).first()
        if campaign is None:
            return
        campaign.status = CampaignStatus.FAILED
        campaign.error = message[:5000]
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["status", "error", "finished_at"])
        audit_record(action="redteam.campaign.failed", obj=campaign, team=campaign.team,
                     object_repr=str(campaign)[:200], changes={"status": campaign.status, "error": message[:500]})
        planting.cleanup(campaign_id)


# --- resuming -------------------------------------------------------------------------------------------------

def reclaim_dead(campaign_id: int, *, everything: bool = False) -> int:
    """Put back attacks claimed by a dead worker (or, `everything`, by anyone: a person resumed it)."""
    running = Attack.objects.filter(campaign_id=campaign_id, status=AttackStatus.RUNNING)
    if not everything:
        owners = set(running.values_list("claimed_by", flat=True).distinct())
        running = running.filter(claimed_by__in=[o for o in owners if worker_alive(o) is False])
    return running.update(status=AttackStatus.PENDING, claim_token="", claimed_by="", claimed_at=None)


def stalled_campaigns(stall_seconds: float | None = None) -> list[int]:
    """The beat job's list: running campaigns with no progress for REDTEAM_STALL_SECONDS, their dead claims
    put back; queued ones never started."""
    stall = float(stall_seconds if stall_seconds is not None else settings.REDTEAM_STALL_SECONDS)
    now = timezone.now()
    cutoff = now - timedelta(seconds=stall)
    ids = list(Campaign.objects.filter(status__in=[CampaignStatus.QUEUED, CampaignStatus.RUNNING],
                                       cancel_requested=False)
               .filter(Q(last_progress_at__lt=cutoff) | Q(last_progress_at__isnull=True, created_at__lt=cutoff))
               .values_list("pk", flat=True))
    for campaign_id in ids:
        reclaim_dead(campaign_id)
        Campaign.objects.filter(pk=campaign_id).update(last_progress_at=now)
    return ids


def run_keys_sweep() -> int:
    """The beat job: revoke the run keys a worker left active (it died, or its campaign no longer runs)."""
    rows = [row for row in CampaignKey.objects.filter(key__revoked_at__isnull=True).select_related("key", "campaign")
            if row.campaign.status != CampaignStatus.RUNNING or worker_alive(row.owner) is False]
    return front_door.revoke(rows)
