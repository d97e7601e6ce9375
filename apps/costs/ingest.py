"""Usage sent by other applications: validate each event in plain Python, price it, write the good ones.

    result = usage_events_ingest(events=[...], actor=token_or_user)

Each bad event is rejected with its index and reasons while the good ones are kept. Events are idempotent by
`request_id`: a resent batch changes nothing (they come back as duplicates). One transaction and one audit
event per batch; prices are looked up once per (model, provider) per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from apps.accounts.models import ApiToken, Team
from apps.accounts.permissions import Action, is_authenticated, team_actions, teams_for
from apps.core.safe_input import find_bad_text
from apps.costs import conf
from apps.costs.ledger import DEFAULTS, ledger_write
from apps.costs.models import CallStatus, Operation, Outcome, Source
from apps.costs.pricing import CENT_MICRO, MILLION, PriceBook

MAX_INT = 2_147_483_647
ZERO = Decimal(0)
TEXT_LIMITS = {"request_id": 100, "feature": 120, "tenant": 120, "provider": 50, "model": 200, "prompt_name": 200,
               "error_type": 80}
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")
INT_FIELDS = ("latency_ms", "prompt_version", "use_case_id", "collection_id")
ALIASES = {"timestamp": "occurred_at", "time": "occurred_at", "prompt": "prompt_name",
           "cache_read_input_tokens": "cached_input_tokens"}
KNOWN = {"occurred_at", "request_id", "team", "feature", "tenant", "provider", "model", "operation", "prompt_name",
         "prompt_version", "source", "status", "error_type", "outcome", "use_case_id", "collection_id", "latency_ms",
         *TOKEN_FIELDS}
FORBIDDEN = {"messages", "prompt_text", "input", "output", "completion", "response", "content"}
SOURCES = set(Source.values)
STATUSES = {CallStatus.OK, CallStatus.ERROR}
OUTCOMES = set(Outcome.values)
OPERATIONS = set(Operation.values)


@dataclass
class Rejection:
    index: int
    request_id: str | None
    errors: list[str]


@dataclass
class IngestResult:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    unpriced: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"received": self.received, "accepted": self.accepted, "duplicates": self.duplicates,
                "unpriced": self.unpriced, "rejected": [r.__dict__ for r in self.rejected]}


class TeamResolver:
    """Which teams an actor may send usage for, and team references (slug or id) resolved once per batch."""

    def __init__(self, actor):
        self.actor = actor
        self.token = actor if isinstance(actor, ApiToken) else None
        self._by_ref: dict[str, Team | None] = {}
        self._allowed: dict[int, bool] = {}

    def default_team_id(self) -> int | None:
        if self.token is not None:
            return self.token.team_id
        if not hasattr(self, "_default"):  # a person in exactly one team may omit it; asked once per batch
            teams = list(teams_for(self.actor, Action.INGEST).values_list("pk", flat=True)[:2])
            self._default = teams[0] if len(teams) == 1 else None
        return self._default

    def resolve(self, ref) -> Team | None:
        key = str(ref)
        if key not in self._by_ref:
            query = Team.objects.filter(pk=int(key)) if is_id(key) else Team.objects.filter(slug=key)
            self._by_ref[key] = query.first()
        return self._by_ref[key]

    def may_send_for(self, team_id: int) -> bool:
        if team_id not in self._allowed:
            actions = team_actions(self.actor, team_id)
            self._allowed[team_id] = Action.INGEST in actions or Action.CHANGE in actions
        return self._allowed[team_id]


def is_id(ref: str) -> bool:
    """A team (or other row) id: ASCII digits that fit a bigint; int() would also take '²' or '١'."""
    return ref.isascii() and ref.isdigit() and len(ref) <= 18


def ingest_window(now: datetime) -> tuple[datetime, datetime]:
    """Events are accepted from (now - raw retention) to (now + allowed clock skew); older ones would be purged
    the next night, later ones are a sender's clock or a bug."""
    return (now - timedelta(days=conf.raw_retention_days()),
            now + timedelta(seconds=conf.ingest_future_skew_seconds()))


def _parse_time(value, now: datetime, window: tuple[datetime, datetime]) -> datetime:
    if value is None:
        return now
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"occurred_at {value!r} is not an ISO 8601 time (e.g. 2025-03-01T12:00:00Z)")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value > 1e14:  # nanoseconds or milliseconds since the epoch
            value = value / 1e9 if value > 1e17 else value / 1e3
        parsed = datetime.fromtimestamp(value, tz=UTC)
    else:
        raise ValueError("occurred_at must be an ISO 8601 string or seconds since the epoch")
    if parsed.tzinfo is None:
        raise ValueError(f"occurred_at {value!r} has no time zone; add Z or an offset")
    parsed = parsed.astimezone(UTC)  # OverflowError for year 1 at +14:00: caught by the caller
    oldest, latest = window
    if parsed > latest:
        raise ValueError(f"occurred_at {value!r} is in the future (more than "
                         f"{conf.ingest_future_skew_seconds()} seconds ahead of the portal's clock)")
    if parsed < oldest:
        raise ValueError(f"occurred_at {value!r} is older than the {conf.raw_retention_days()} days usage is kept")
    return parsed


def clean_event(raw, *, index: int, now: datetime, teams: TeamResolver, source_default: str = Source.API,
                window: tuple[datetime, datetime] | None = None):
    """(row, None) for a good event, (None, [reasons]) for a bad one. Plain Python: fast, every error named."""
    if not isinstance(raw, dict):
        return None, [f"event {index} must be a JSON object, not {type(raw).__name__}"]
    bad_text = find_bad_text(raw, max_depth=4)
    if bad_text:  # NUL, a lone surrogate or deep nesting: PostgreSQL would refuse the whole batch
        return None, [f"{bad_text[0]} {bad_text[1]}"]
    errors: list[str] = []
    data = {ALIASES.get(k, k): v for k, v in raw.items()}
    unknown = sorted(set(data) - KNOWN)
    text_fields = sorted(set(unknown) & FORBIDDEN)
    if text_fields:
        errors.append(f"prompt and output text are never stored: remove {', '.join(text_fields)}")
    elif unknown:
        errors.append(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    row = dict(DEFAULTS)
    for name, limit in TEXT_LIMITS.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(f"{name} must be a string")
        elif len(value) > limit:
            errors.append(f"{name} is longer than {limit} characters")
        else:
            row[name] = value.strip()
    if not row.get("request_id"):
        errors.append("request_id is required (the idempotency key)")
    if not data.get("model") or not isinstance(data.get("model"), str):
        errors.append("model is required")
    for name in (*TOKEN_FIELDS, *INT_FIELDS):
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
            errors.append(f"{name} must be a whole number from 0 to {MAX_INT}")
        else:
            row[name] = value
    if row["cached_input_tokens"] > row["input_tokens"]:
        errors.append("cached_input_tokens cannot exceed input_tokens (input includes cached input)")
    if row["reasoning_tokens"] > row["output_tokens"]:
        errors.append("reasoning_tokens cannot exceed output_tokens (output includes reasoning)")
    for name, allowed, default in (("source", SOURCES, source_default), ("status", STATUSES, CallStatus.OK),
                                   ("outcome", OUTCOMES, Outcome.UNKNOWN), ("operation", OPERATIONS, Operation.CHAT)):
        value = data.get(name, default)
        if not isinstance(value, str) or value not in allowed:  # a list or object is refused too, not hashed
            errors.append(f"{name} must be one of {', '.join(sorted(allowed))}, not {value!r}")
        else:
            row[name] = value
    try:
        row["occurred_at"] = _parse_time(data.get("occurred_at"), now, window or ingest_window(now))
    except (OverflowError, OSError):
        errors.append(f"occurred_at {data.get('occurred_at')!r} is out of range")
    except ValueError as exc:
        errors.append(str(exc))
    team_ref = data.get("team")
    if team_ref is None or team_ref == "":
        row["team_id"] = teams.default_team_id()
        if row["team_id"] is None:
            errors.append("team is required: name the team (slug or id) this usage belongs to")
    elif not isinstance(team_ref, str | int) or isinstance(team_ref, bool):
        errors.append("team must be a team slug or id")
    else:
        team = teams.resolve(team_ref)
        if team is None:
            errors.append(f"there is no team {team_ref!r}")
        else:
            row["team_id"] = team.pk
    if row["team_id"] is not None and not errors and not teams.may_send_for(row["team_id"]):
        errors.append(f"this {'token' if teams.token else 'account'} may not send usage for team {team_ref or row['team_id']!r}")
    if errors:
        return None, errors
    row["api_token_id"] = teams.token.pk if teams.token else None
    row["user_id"] = None if teams.token else getattr(teams.actor, "pk", None)
    return row, None


def price_rows(rows: list[dict]) -> int:
    """Price each row at its time (one catalog query for the batch). Returns how many stayed unpriced.

    Same arithmetic as pricing.cost_of / cache_savings_of, with each price's per-token factors computed once
    (Decimal throughout, rounded to the ledger's 8 decimals half away from zero, as PostgreSQL rounds).
    """
    book = PriceBook.load({r["model"] for r in rows})
    factors: dict[int, tuple] = {}
    unpriced = 0
    for r in rows:
        price = book.at(r["model"], r["provider"], r["occurred_at"])
        if price is None:
            if r["input_tokens"] == r["output_tokens"] == 0:
                r["cost"] = Decimal(0)  # nothing used: free whatever the price
            else:
                unpriced += 1
            continue
        f = factors.get(price.pk)
        if f is None:
            ip, op = price.input_per_mtok / MILLION, price.output_per_mtok / MILLION
            cp = (price.cached_input_per_mtok / MILLION) if price.cached_input_per_mtok is not None else ip
            rp = (price.reasoning_per_mtok / MILLION) if price.reasoning_per_mtok is not None else op
            f = factors[price.pk] = (ip, cp, op, rp, ip - cp if price.cached_input_per_mtok is not None else None)
        ip, cp, op, rp, saving = f
        it, ot = r["input_tokens"], r["output_tokens"]
        ct, rt = min(r["cached_input_tokens"], it), min(r["reasoning_tokens"], ot)
        r["cost"] = ((it - ct) * ip + ct * cp + (ot - rt) * op + rt * rp).quantize(CENT_MICRO, rounding=ROUND_HALF_UP)
        r["price_id"] = price.pk
        r["cache_savings"] = (ct * saving).quantize(CENT_MICRO, rounding=ROUND_HALF_UP) if saving and ct else ZERO
    return unpriced


def usage_events_ingest(*, events: list, actor, source_default: str = Source.API, via: str = "usage API",
                        now: datetime | None = None) -> IngestResult:
    """Validate, price and write a batch. Bad events are named by index; good ones are kept."""
    if not is_authenticated(actor):
        raise PermissionError("authentication required")
    now = now or timezone.now()
    result = IngestResult(received=len(events))
    teams = TeamResolver(actor)
    window = ingest_window(now)
    good: list[dict] = []
    seen: set[str] = set()
    for index, raw in enumerate(events):
        row, errors = clean_event(raw, index=index, now=now, teams=teams, source_default=source_default,
                                  window=window)
        if row is not None and row["request_id"] in seen:
            row, errors = None, ["request_id appears twice in this batch"]
        if errors:
            rid = raw.get("request_id") if isinstance(raw, dict) and isinstance(raw.get("request_id"), str) else None
            if rid is not None and find_bad_text(rid):
                rid = None  # echoed back in JSON is fine, but keep the answer free of what we refused
            result.rejected.append(Rejection(index=index, request_id=rid, errors=errors))
            continue
        seen.add(row["request_id"])
        good.append(row)
    if good:
        price_rows(good)
        token = teams.token
        audit = {"action": "usage.ingest", "object_type": "costs.usagebatch", "object_id": good[0]["request_id"][:64],
                 "object_repr": f"{len(good)} usage events via {via}",
                 "team": token.team_id if token else good[0]["team_id"],
                 "changes": {"via": via, "received": result.received, "rejected": len(result.rejected),
                             "first_request_id": good[0]["request_id"], "last_request_id": good[-1]["request_id"]}}
        if token is not None:
            audit["token"] = token
        else:
            audit["user"] = actor
        inserted = ledger_write(good, audit=audit, now=now)
        result.accepted = len(inserted)
        result.duplicates = len(good) - len(inserted)
        result.unpriced = sum(1 for r in inserted if r["cost"] is None)
        if result.duplicates:
            new = {r["request_id"] for r in inserted}
            result.duplicate_ids = [r["request_id"] for r in good if r["request_id"] not in new][:100]
    return result
