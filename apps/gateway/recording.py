"""Recording, nothing lost: each call's CallRecord goes onto a Redis stream before the answer's last bytes,
and `manage.py gateway_recorder` writes the stream to the ledger in batches.

The hot path does no PostgreSQL write: a `Recorder` is what the call path is given; it XADDs the record (JSON,
with the gateway key's id) and raises if Redis refuses, so the client never sees a complete answer that was not
recorded. The gateway's answered calls are written before the answer and confirmed after it (ADR 0133): the
bytes are in Redis's socket before the client has its answer, and a failed round trip sends the record to the
ledger directly. The writer reads with a consumer group (XREADGROUP), writes each batch through
costs' one ledger write path (`ledger_write`, idempotent by request id: a batch written twice changes
nothing), then XACKs and deletes the entries. Entries a dead writer had read but not acknowledged are taken
over with XAUTOCLAIM after GATEWAY_RECORDER_CLAIM_IDLE_MS. An entry that cannot be read goes to a dead-letter
stream, named in the log by its id only. No key material is ever in a record: the key travels as its id.

Sampled bodies (a key's opt-in, apps/gateway/bodies.py) travel as entries of their own on the same stream
(field `b`, not `r`); the writer redacts and stores them after the batch's ledger rows.
The same transaction adds the inserted rows to the daily traffic rollups (traffic.py) and to the per-minute
SLI counts per use case that the SLOs read (sli.py).
After each batch the gateway's budget counters move the batch's settled cost into their ledger base
(apps/gateway/budgets.py); the writer's loop also sweeps expired reservations and reconciles the counters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket

import orjson
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from apps.core import redis as portal_redis
from apps.costs.ledger import ledger_write
from apps.costs.models import CallStatus
from apps.costs.pricing import PriceBook, TokenCounts
from apps.costs.services import UsageContext, usage_row
from apps.gateway import bodies, budgets, limits, sli, traffic
from apps.gateway.keys import KeyInfo
from apps.llm.results import CallRecord

log = logging.getLogger(__name__)
GROUP = "ledger"


def stream_key() -> str:
    return portal_redis.key("gateway", "records")


def dead_key() -> str:
    return portal_redis.key("gateway", "records-dead")


def serialize(record: CallRecord, key_id: int | None, end_user: str = "") -> bytes:
    data = record.to_dict()
    data["gateway_key_id"] = key_id
    if end_user:
        data["end_user"] = end_user
    return orjson.dumps(data, default=str)


def end_user_hash(team_id: int, data: dict, metadata: dict) -> str:
    """A keyed hash of the request's end user (the OpenAI `user` field, else `metadata.end_user`), or "".

    Never the raw value (often an e-mail address): blake2b keyed with the project's secret, salted by team, so
    the table cannot be reversed by hashing a list of addresses. One hash per request, microseconds.
    """
    value = data.get("user") or metadata.get("end_user")
    if not isinstance(value, str) or not value.strip():
        return ""
    return hashlib.blake2b(f"{team_id}:{value.strip()}".encode(), digest_size=16,
                           key=settings.SECRET_KEY.encode()[:64]).hexdigest()


# One round trip records an answered call (ADR 0125): its budget hold settled (budgets.SETTLE_LUA; before the
# XADD, so the writer always finds it settled), the record added, the tokens charged to the key's token windows.
# The settle and the charge are counted, not raised: the record alone decides whether the call was recorded.
_RECORD = portal_redis.Script(budgets.SETTLE_LUA + """
-- KEYS: the records stream, [the hold's reservation, held set, pending set,] the key's token windows...
-- ARGV: the record, '1' when a hold is settled, its request id, cost, pending expiry, counters' prefix, the tokens,
--       then each token window's expiry (seconds)
local settled, first = -1, 2
if ARGV[2] == '1' then
  local ok, out = pcall(settle, KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  if ok then settled = out else settled = -2 end
  first = 5
end
redis.call('XADD', KEYS[1], '*', 'r', ARGV[1])
local charged = 1
for i = first, #KEYS do
  local a = redis.pcall('INCRBY', KEYS[i], ARGV[7])
  local b = redis.pcall('EXPIRE', KEYS[i], ARGV[8 + i - first])
  if type(a) == 'table' and a.err or type(b) == 'table' and b.err then charged = 0 end
end
return {settled, charged}
""")


class Recorder:
    """The Recorder for calls made with this key (and, for adoption, this hashed end user). A call's record goes
    on the stream in one round trip with what it settles: `hold`'s budget reservation, and an answered call's
    (status ok, not a cache hit) tokens on the key's token limits (limits.charge_windows): one script (a bare
    record: its XADD alone).

    `answer_first` (the gateway's own requests, ADR 0133): an answered call's round trip is written at once and
    its reply read after the answer, by `confirm()`, which the caller must await. Only when the write left every
    byte in Redis's socket (resp.Sent.out): a gateway killed after the answer leaves a record Redis has. If Redis
    then fails the round trip, `confirm()` puts the record on the ledger itself (idempotent by request id).
    Otherwise, as for every other record, the reply comes first, and a record Redis refuses raises: the caller
    must not answer."""

    __slots__ = ("info", "end_user", "hold", "answer_first", "_unconfirmed")

    def __init__(self, info: KeyInfo, end_user: str = "", hold: budgets.BudgetHold | None = None, *,
                 answer_first: bool = False):
        self.info, self.end_user, self.hold, self.answer_first = info, end_user, hold, answer_first
        self._unconfirmed: tuple | None = None

    async def __call__(self, record: CallRecord) -> None:
        info, hold = self.info, self.hold
        payload = serialize(record, info.id, self.end_user)
        settlement = None
        if hold is not None:
            try:
                settlement = await hold.settlement(record)
            except Exception:  # noqa: BLE001 - the hold stays until the sweeper releases it (fail safe)
                log.warning("gateway budget hold of request %s not settled", record.request_id, exc_info=True)
        answered = record.status == CallStatus.OK
        tokens = record.tokens.input_tokens + record.tokens.output_tokens
        windows = limits.charge_windows(info, tokens=tokens) if answered and not record.cache_hit else []
        keys, args = [stream_key()], [payload, "0", "", 0, 0, "", tokens]
        if settlement is not None:
            keys += settlement[0]
            args[1:6] = ["1", *settlement[1]]
        keys += [name for name, _ttl in windows]
        args += [ttl for _name, ttl in windows]
        sent = _RECORD.send_now(keys, args) if self.answer_first and answered and self._unconfirmed is None else None
        if sent is not None and sent.out:
            self._unconfirmed = (sent, keys, args, payload, record.request_id)
            return
        # raises when not recorded: the caller must not answer
        answer = await (_RECORD.answer(sent, keys, args) if sent is not None else _RECORD.arun(keys, args))
        self._report(answer, record.request_id)

    async def confirm(self) -> None:
        """The reply to a record written before the answer (nothing to do for any other). Never raises."""
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        if unconfirmed is None:
            return
        sent, keys, args, payload, request_id = unconfirmed
        try:
            self._report(await _RECORD.answer(sent, keys, args), request_id)
            return
        except Exception:  # noqa: BLE001 - answered already: the ledger takes the record directly
            log.warning("gateway record of request %s not confirmed by Redis: written to the ledger directly",
                        request_id, exc_info=True)
        try:
            await sync_to_async(record_directly)(payload)
        except Exception:
            log.exception("gateway record of request %s lost: neither Redis nor the ledger took it", request_id)

    def _report(self, answer: list, request_id: str) -> None:
        settled, charged = answer
        if settled == -2:
            log.warning("gateway budget hold of request %s not settled", request_id)
        if not charged:
            log.warning("gateway usage not counted against key %s's limits", self.info.prefix)


def record_directly(payload: bytes) -> None:
    """A record the stream did not take, onto the ledger now, as the writer would put it there."""
    _ledger_add([row_of(payload)])


def queue_record(record: CallRecord) -> None:
    """A sync call path's Recorder (`apps.llm.calls.embed(recorder=...)`): the portal's own call's record goes
    onto the same stream, without a gateway key, and the writer puts it in the ledger like the gateway's (its
    traffic and SLI counts skip rows without a key). One XADD; raises if Redis refuses, and the call path then
    writes the ledger at once (ADR 0047)."""
    portal_redis.client().xadd(stream_key(), {"r": serialize(record, None)})


async def refusal_record(info: KeyInfo, *, context: UsageContext, model: str, operation: str, code: str,
                         guardrail_actions: tuple[dict, ...] = (), switch_id: int | None = None) -> None:
    """A request the gateway refused before any model call (alias not allowed, use case not active, a key
    limit, a guardrail block of the input: with its safety events) is one usage event too: status refused, no
    tokens, the refusal's code as its error type (and the switch that refused it, `switch_id`). If Redis
    is down the refusal is still answered (logged), since nothing was spent."""
    if switch_id is not None:
        context = dataclasses.replace(context, switch_id=switch_id)
    record = CallRecord(request_id=context.request_id, context=context, provider="", model=model[:200],
                        price_name=None, operation=operation, tokens=TokenCounts(), status=CallStatus.REFUSED,
                        error_type=code, guardrail_actions=guardrail_actions)
    try:
        await Recorder(info)(record)
    except redis.RedisError:
        log.warning("could not record the refused request %s (%s)", context.request_id, code)


async def keep_body(info: KeyInfo, *, context: UsageContext, call, result) -> None:
    """When this request is sampled (the key opted in), put its bodies on the stream for the writer. Never
    fails the answer: a body that cannot be queued is lost (logged by request id)."""
    if not bodies.sampled(info):
        return
    try:
        await portal_redis.async_client().xadd(stream_key(), {"b": bodies.sample_payload(
            info, context=context, call=call, result=result)})
    except redis.RedisError:
        log.warning("could not queue the sampled body of request %s", context.request_id)


def row_of(payload: bytes, prices: PriceBook | None = None) -> dict:
    """The ledger row of a serialized call record (`prices`: a PriceBook for the batch, else one query per row)."""
    return _row_of_data(orjson.loads(payload), prices)


def _price_name(data) -> str | None:
    """The name a parsed record is priced by (None for one that is not a record: it fails in `_row_of_data`)."""
    return (data.get("price_name") or data.get("model")) if isinstance(data, dict) else None


def _row_of_data(data: dict, prices: PriceBook | None) -> dict:
    key_id = data.pop("gateway_key_id", None)
    end_user = data.pop("end_user", "")
    record = CallRecord.from_dict(data)
    row = usage_row(context=record.context, provider=record.provider, model=record.model,
                    price_name=record.price_name, operation=record.operation, tokens=record.tokens,
                    latency_ms=record.latency_ms, status=record.status, error_type=record.error_type,
                    occurred_at=record.occurred_at, gateway_key_id=key_id, alias=record.alias,
                    deployment=record.deployment, upstream_ms=record.upstream_ms, ttft_ms=record.ttft_ms,
                    cache_hit=record.cache_hit, fallbacks=record.fallbacks, cache_saving=record.cache_saving,
                    cache_tokens=record.cache_tokens, guardrail_actions=list(record.guardrail_actions) or None,
                    prices=prices, groundedness=record.groundedness)
    row.pop("_price", None)
    row["request_id"] = record.request_id[:100]
    if end_user:
        row["end_user"] = str(end_user)[:32]  # not a ledger column: traffic_add counts it (EndUserDaily)
    return row


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(stream_key(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_once(consumer: str, *, block_ms: int = 1000, count: int | None = None) -> int:
    """Write one batch (stale entries of dead writers first). Returns how many entries it handled."""
    client = portal_redis.client()
    count = count or settings.GATEWAY_RECORDER_BATCH
    ensure_group(client)
    _next, entries, *_ = client.xautoclaim(stream_key(), GROUP, consumer,
                                           min_idle_time=settings.GATEWAY_RECORDER_CLAIM_IDLE_MS,
                                           start_id="0-0", count=count)
    if not entries:
        got = client.xreadgroup(GROUP, consumer, {stream_key(): ">"}, count=count, block=block_ms or None)
        entries = got[0][1] if got else []
    entries = [(entry_id, fields) for entry_id, fields in entries if fields]  # deleted under a claim: skip
    if not entries:
        return 0
    rows, ids, seen, samples, parsed = [], [], set(), [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        if b"b" in fields:  # a sampled body (bodies.py), not a call record
            samples.append(fields[b"b"])
            continue
        try:
            parsed.append((entry_id, fields, orjson.loads(fields[b"r"])))
        except Exception:  # noqa: BLE001 - one unreadable entry must not block the stream
            _dead_letter(client, entry_id, fields)
    # The batch's prices in one query: a query per row cost the writer half its CPU at 500 req/s.
    prices = PriceBook.load({_price_name(data) for _id, _fields, data in parsed})
    for entry_id, fields, data in parsed:
        try:
            row = _row_of_data(data, prices)
        except Exception:  # noqa: BLE001 - one unreadable entry must not block the stream
            _dead_letter(client, entry_id, fields)
            continue
        if row["request_id"] in seen:  # the same request twice in one batch: the ledger keeps the first
            continue
        seen.add(row["request_id"])
        rows.append(row)
    if rows:
        _ledger_add(rows)
        budgets.ledger_caught_up([row["request_id"] for row in rows])  # their settled cost is the ledger's now
    if samples:
        bodies.samples_write(samples)
    pipe = client.pipeline(transaction=False)
    pipe.xack(stream_key(), GROUP, *ids)
    pipe.xdel(stream_key(), *ids)
    pipe.execute()
    return len(ids)


def _ledger_add(rows: list[dict]) -> None:
    with transaction.atomic():  # the gateway's rollups and SLI counts take what the ledger inserted, in its commit
        inserted = ledger_write(rows)
        traffic.traffic_add(inserted)
        sli.sli_add(inserted)


def _dead_letter(client, entry_id: bytes, fields: dict) -> None:
    log.exception("gateway record %s unreadable: moved to the dead-letter stream", entry_id.decode())
    client.xadd(dead_key(), fields)


def linger_after(handled: int) -> float:
    """Seconds the writer waits after a batch of `handled` entries: a short batch lets the next one gather. A
    batch's statements (ledger, rollups, SLI counts, acknowledgement) cost about as much for one row as for a
    hundred, on the cores the gateway shares; at 500 req/s one batch per call cost as much CPU as the gateway
    itself (ADR 0127). A full batch or an empty read (it blocked already) goes on at once."""
    if 0 < handled < settings.GATEWAY_RECORDER_BATCH:
        return settings.GATEWAY_RECORDER_LINGER_MS / 1000
    return 0.0


def drain_all(consumer: str | None = None) -> int:
    """Write everything waiting now (tests, and a writer's final pass)."""
    consumer = consumer or consumer_name()
    total = 0
    while handled := drain_once(consumer, block_ms=0):
        total += handled
    return total
