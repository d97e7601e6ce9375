"""Where a call goes: a name resolves to a Route (an alias's deployments, or one catalog model).

Routes are cached in process: the hot path never queries the database per request. Every process checks a
stamp in Redis at most every LLM_ROUTES_CHECK_SECONDS; a change to a provider, model, price, alias or
deployment replaces the stamp on commit (signals connected in hooks.py), so every process drops its routes
within that interval. A Redis outage means the cache is dropped at every check (fresh, slower, never stale).
Names that resolve to nothing are cached too, so unknown names cannot hammer the database.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from apps.core import metrics, single_flight
from apps.core import redis as core_redis
from apps.costs.models import Price
from apps.costs.pricing import PriceBook, price_at, worst_case_cost
from apps.llm.errors import (
    BadRequest,
    ContextLengthExceeded,
    LlmError,
    ModelNotFound,
    ProviderUnavailable,
    StreamInterrupted,
)
from apps.llm.models import Deployment, Model, ModelAlias, ModelKind, RoutingStrategy
from apps.llm.retry import RetryPolicy, retry_wait

log = logging.getLogger(__name__)
STAMP_PARTS = ("llm", "routes-stamp")


@dataclass(frozen=True)
class Target:
    """One place a call can go: a catalog model (with its provider and prices), as a deployment of an alias."""

    model: Model
    prices: PriceBook | None = None  # None: price on demand (price_at), e.g. a Model handed in directly
    deployment_id: int | None = None
    deployment: str = ""  # the label recorded on the ledger ("" for a direct catalog model)
    weight: int = 1
    priority: int = 0  # 0 primary; higher: fallback tiers
    max_concurrency: int | None = None
    rpm_limit: int | None = None
    switch_id: int | None = None  # put in place by a reroute (Reroute.switch_id): marks the calls it answers

    def price(self, at: datetime | None = None) -> Price | None:
        """The price valid at `at`: from the cached price book (no query), else asked of the database (a Model
        handed in directly, on the sync path only)."""
        at = at or timezone.now()
        if self.prices is None:
            return price_at(self.model.priced_as, at, self.model.provider.name)
        return self.prices.at(self.model.priced_as, self.model.provider.name, at)


@dataclass(frozen=True)
class Route:
    name: str
    kind: str
    targets: tuple[Target, ...]
    alias: str = ""  # the alias's name, "" for a direct catalog model
    strategy: str = "weighted"
    deadline_seconds: float | None = None
    max_attempts: int | None = None
    missing: str = ""  # why the name resolves to nothing (raised as ModelNotFound)
    switch_id: int | None = None  # rerouted as a whole (or a deployment left out) by this switch: marks its calls
    loaded_at: float = field(default_factory=time.monotonic)

    def check(self, kind: str) -> Route:
        """This route, if it can serve `kind`; else the LlmError a caller should see."""
        if self.missing:
            raise ModelNotFound(self.missing)
        if self.kind != kind:
            what = "chat" if kind == ModelKind.CHAT else "embeddings"
            noun = "alias" if self.alias else "model"
            shown = dict(ModelKind.choices).get(self.kind, self.kind).lower()
            raise BadRequest(f"'{self.name}' is a {shown} {noun}; it cannot be used for {what}.")
        return self

    @property
    def first(self) -> Target:
        return self.targets[0]

    @property
    def widest_output(self) -> Model:
        """The model that may produce the most tokens (what max_tokens is checked against)."""
        return max(self.targets, key=lambda t: t.model.max_output_tokens).model

    @property
    def routed(self) -> bool:
        """An alias (deployments, breakers, fallback) rather than one catalog model (retries only)."""
        return bool(self.alias)


def model_problem(model: Model) -> str:
    if not model.is_active or not model.provider.is_active:
        return f"The model '{model.name}' is disabled in the catalog."
    return ""


def route_for_model(model: Model, prices: PriceBook | None = None) -> Route:
    """A route to one catalog model (no alias)."""
    return Route(name=model.name, kind=model.kind, targets=(Target(model=model, prices=prices),),
                 missing=model_problem(model))


# -- reroutes: what higher apps (incidents' model fallback) ask of a name's route -------------------------------
@dataclass(frozen=True)
class Reroute:
    """Serve a name (an alias or a catalog model) or one deployment differently, for now.

    By name: `to` (another alias or catalog model: its route serves, under the name asked for) or
    `deployment_id` (only that deployment, of any alias). By deployment (the key `deployment:<id>`): the
    deployment is left out of its alias and, if `to` or `deployment_id` is given, what they name takes its place
    (same priority and weight). One level only: the route a reroute points at is not rerouted again.
    """

    to: str = ""
    deployment_id: int | None = None
    why: str = ""
    switch_id: int | None = None  # who asks it (an incident mitigation's id): marks the calls it serves


RerouteProvider = Callable[[], "dict[str, Reroute]"]
_reroute_providers: dict[str, RerouteProvider] = {}


def register_reroutes(key: str, fn: RerouteProvider) -> None:
    """`fn()` -> {name or "deployment:<id>": Reroute}: asked once per routes stamp and process (sync, may
    query). Whoever changes an answer calls `routes_changed()`, so every process asks again within
    LLM_ROUTES_CHECK_SECONDS."""
    _reroute_providers[key] = fn


def deployment_key(deployment_id: int) -> str:
    return f"deployment:{deployment_id}"


def reroutes() -> dict[str, Reroute]:
    """Every provider's reroutes, merged (the first registered wins a name), cached with the routes."""
    cached = _cache.reroutes
    if cached is None:
        cached = {}
        for fn in _reroute_providers.values():
            for name, reroute in (fn() or {}).items():
                cached.setdefault(name, reroute)
        _cache.reroutes = cached
    return cached


def rerouted(name: str) -> bool:
    """Is `name` rerouted now? (the sync call path asks before using a catalog Model handed in directly)."""
    _check_stamp()
    return name in reroutes()


def _deployment_targets(deployment_id: int, *, as_priority: int | None = None, as_weight: int | None = None,
                        kind: str = "") -> tuple[Target, ...]:
    d = Deployment.objects.select_related("model__provider", "alias").filter(pk=deployment_id).first()
    if d is None or not d.is_active or model_problem(d.model) or (kind and d.model.kind != kind):
        return ()
    prices = PriceBook.load([d.model.priced_as])
    return (Target(model=d.model, prices=prices, deployment_id=d.pk, deployment=f"{d.alias.name}/{d.model.name}",
                   weight=d.weight if as_weight is None else as_weight,
                   priority=d.priority if as_priority is None else as_priority,
                   max_concurrency=d.max_concurrency, rpm_limit=d.rpm_limit),)


def _replaced(route: Route, table: dict[str, Reroute]) -> Route:
    """`route` with its rerouted deployments left out or replaced (what a `deployment:<id>` reroute asks)."""
    targets: list[Target] = []
    changed, left_out = False, None
    for target in route.targets:
        reroute = table.get(deployment_key(target.deployment_id)) if target.deployment_id else None
        if reroute is None:
            targets.append(target)
            continue
        changed = True
        if reroute.deployment_id:
            targets.extend(dataclasses.replace(t, switch_id=reroute.switch_id) for t in _deployment_targets(
                reroute.deployment_id, as_priority=target.priority, as_weight=target.weight, kind=route.kind))
        elif reroute.to:
            other = _load_route(reroute.to)
            if not other.missing and other.kind == route.kind:
                targets.extend(dataclasses.replace(t, priority=target.priority, weight=target.weight,
                                                   switch_id=reroute.switch_id) for t in other.targets)
        else:  # left out: every call of the alias is served by its other deployments because of this switch
            left_out = left_out or reroute.switch_id
    if not changed:
        return route
    missing = route.missing or ("" if targets else f"Every deployment of '{route.name}' is switched off "
                                                   f"({'; '.join(sorted({r.why for r in table.values() if r.why}))}).")
    return dataclasses.replace(route, targets=tuple(targets), missing=missing, switch_id=route.switch_id or left_out)


def load_route(name: str) -> Route:
    """Build the route for `name` from the database (a cache miss), as rerouted now (see `Reroute`)."""
    table = reroutes()
    reroute = table.get(name)
    if reroute is None:
        route = _load_route(name)
    elif reroute.deployment_id:
        base = _load_route(name)
        targets = _deployment_targets(reroute.deployment_id, kind=base.kind)
        route = dataclasses.replace(base, targets=targets, missing=base.missing if base.missing or targets else
                                    f"'{name}' is pinned to a deployment that cannot serve now.",
                                    switch_id=reroute.switch_id)
    else:
        base, other = _load_route(name), _load_route(reroute.to)
        kind_ok = not base.kind or other.kind == base.kind
        route = dataclasses.replace(other, name=name, switch_id=reroute.switch_id, missing=other.missing or (
            "" if kind_ok else f"'{name}' is rerouted to '{reroute.to}', which serves another kind of model."))
    return _replaced(route, table) if table else route


def _load_route(name: str) -> Route:
    """The route for `name` as the catalog says: an alias first, else a catalog model."""
    alias = ModelAlias.objects.filter(name=name).prefetch_related(Prefetch(
        "deployments", queryset=Deployment.objects.select_related("model__provider").order_by("priority", "id"),
    )).first()
    if alias is not None:
        return _alias_route(alias)
    model = Model.objects.select_related("provider").filter(name=name).first()
    if model is None:
        return Route(name=name, kind="", targets=(),
                     missing=f"There is no model named '{name}' in the catalog (see Models & prices).")
    return route_for_model(model, PriceBook.load([model.priced_as]))


def _alias_route(alias: ModelAlias) -> Route:
    usable = [d for d in alias.deployments.all() if d.is_active and not model_problem(d.model)
              and d.model.kind == alias.kind]
    missing = ""
    if not alias.is_active:
        missing = f"The model alias '{alias.name}' is disabled."
    elif not usable:
        missing = f"The model alias '{alias.name}' has no active deployment."
    prices = PriceBook.load([d.model.priced_as for d in usable])
    targets = tuple(
        Target(model=d.model, prices=prices, deployment_id=d.pk, deployment=f"{alias.name}/{d.model.name}",
               weight=d.weight, priority=d.priority, max_concurrency=d.max_concurrency, rpm_limit=d.rpm_limit)
        for d in usable)
    return Route(name=alias.name, kind=alias.kind, targets=targets, alias=alias.name, strategy=alias.strategy,
                 deadline_seconds=alias.deadline_seconds, max_attempts=alias.max_attempts, missing=missing)


class _Cache:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.reroutes: dict[str, Reroute] | None = None
        self.stamp: bytes | None = None
        self.checked = 0.0

    def clear(self) -> None:
        self.routes = {}
        self.reroutes = None

    def seen(self, stamp: bytes | None) -> None:
        """The stamp read from Redis (None: unreadable): routes built under another stamp are dropped."""
        if stamp is None or stamp != self.stamp:
            self.clear()
        self.stamp = stamp
        self.checked = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.checked >= settings.LLM_ROUTES_CHECK_SECONDS


_cache = _Cache()


def _stamp_key() -> str:
    return core_redis.key(*STAMP_PARTS)


def _check_stamp() -> None:
    if _cache.due():
        try:
            redis = core_redis.client()
            stamp = redis.get(_stamp_key())
            if stamp is None:  # first use of this Redis: plant one
                redis.set(_stamp_key(), uuid.uuid4().hex, nx=True)
                stamp = redis.get(_stamp_key())
        except Exception:  # noqa: BLE001 - Redis down: serve fresh routes, never stale ones
            log.warning("routes stamp unreadable: routes reloaded", exc_info=True)
            stamp = None
        _cache.seen(stamp)


def resolve(name: str) -> Route:
    """The route for `name` (sync callers); from the process cache when its stamp is current."""
    _check_stamp()
    route = _cache.routes.get(name)
    if route is None:
        route = load_route(name)
        _cache.routes[name] = route
    return route


async def aresolve(name: str) -> Route:
    """resolve() for the async path: one Redis GET at most every LLM_ROUTES_CHECK_SECONDS, the DB only on a miss."""
    if _cache.due():
        _cache.checked = time.monotonic()  # one checker at a time; the others use what is cached
        try:
            redis = core_redis.async_client()
            stamp = await redis.get(_stamp_key())
            if stamp is None:
                await redis.set(_stamp_key(), uuid.uuid4().hex, nx=True)
                stamp = await redis.get(_stamp_key())
        except Exception:  # noqa: BLE001
            log.warning("routes stamp unreadable: routes reloaded", exc_info=True)
            stamp = None
        _cache.seen(stamp)
    route = _cache.routes.get(name)
    if route is None:  # one load per name and stamp, however many calls wait for it (single_flight)
        route = await single_flight.shared(_loading, (name, _cache.stamp), lambda: _aload(name))
    return route


_loading: dict = {}  # route loads in flight (aresolve)


async def _aload(name: str) -> Route:
    routes = _cache.routes  # the generation it is loaded for: a stamp seen meanwhile replaces the dict
    route = routes[name] = await sync_to_async(load_route)(name)
    return route


def routes_changed() -> None:
    """Something routes depend on changed: drop this process's routes now, and every process's on commit."""
    _cache.clear()

    def bump() -> None:
        _cache.clear()
        try:
            core_redis.client().set(_stamp_key(), uuid.uuid4().hex)
        except Exception:  # noqa: BLE001 - other processes will see it when Redis is back (or drop on error)
            log.warning("routes stamp not replaced: other processes may serve old routes", exc_info=True)

    transaction.on_commit(bump)


def routes_reset() -> None:
    """Forget every cached route in this process (tests: the database was rolled back under the cache)."""
    _cache.clear()
    _cache.checked = 0.0


# -- the decisions of one call ------------------------------------------------------------------------------
class RoutePlan:
    """What one call tries, in which order, and when it gives up. No I/O: calls.py and acalls.py run the loop
    (take a breaker slot, call the adapter, wait) and report each failure here.

    An alias: tiers by priority; within a tier the strategy orders the deployments (weighted: a random order
    drawn by weight; least_inflight: fewest calls in flight first); a failed attempt moves to the next
    deployment (fallback) on 429, 5xx, timeouts, connection errors, a deployment's own errors (key, unknown
    model) and context-length errors (then only to larger windows). After a whole pass without an answer it
    waits (backoff, Retry-After honoured) and passes again, within `max_attempts` and `deadline_seconds`.
    A bad request is never retried. One catalog model: the provider's retry policy, as before (retry.py).
    """

    def __init__(self, route: Route, *, max_tokens: int | None = None, rng: random.Random | None = None):
        self.route = route
        self.max_tokens = max_tokens
        self.rng = rng or random
        self.attempts = 0
        self.passes = 0
        self.pass_attempts = 0
        self.min_context = 0
        self.last_error: LlmError | None = None
        self.retry_error: LlmError | None = None  # the last retryable error of this pass
        self.skipped: list[str] = []  # why deployments were passed over this pass ("open", "busy", "limited")
        started = time.monotonic()
        first = route.targets[0].model.provider if route.targets else None
        if route.routed:
            self.deadline = started + route.deadline_seconds if route.deadline_seconds else None
            self.max_attempts = max(1, route.max_attempts or 1)
            self.policy = RetryPolicy(max_retries=self.max_attempts, base_seconds=settings.LLM_RETRY_BASE_SECONDS,
                                      cap_seconds=settings.LLM_RETRY_CAP_SECONDS,
                                      retry_after_max_seconds=settings.LLM_RETRY_AFTER_MAX_SECONDS)
        else:
            self.deadline = None
            self.policy = RetryPolicy.for_provider(first)
            self.max_attempts = self.policy.max_retries + 1

    @property
    def least_inflight(self) -> bool:
        return self.route.routed and self.route.strategy == RoutingStrategy.LEAST_INFLIGHT

    def eligible(self, target: Target) -> bool:
        model = target.model
        if self.route.routed and target.weight <= 0:
            return False
        if self.min_context and model.context_window <= self.min_context:
            return False
        return not (self.max_tokens is not None and self.max_tokens > model.max_output_tokens)

    def tiers(self) -> list[list[Target]]:
        """This pass's deployments by tier (priority ascending), those that can take the request."""
        self.pass_attempts = 0
        self.skipped = []
        self.retry_error = None
        tiers: dict[int, list[Target]] = {}
        for target in self.route.targets:
            if self.eligible(target):
                tiers.setdefault(target.priority, []).append(target)
        return [tiers[p] for p in sorted(tiers)]

    def order(self, tier: list[Target], inflight: list[int] | None = None) -> list[Target]:
        """The tier in the order to try it."""
        if len(tier) == 1:
            return list(tier)
        if inflight is not None:
            keyed = [(n, self.rng.random(), i) for i, n in enumerate(inflight)]
            return [tier[i] for _, _, i in sorted(keyed)]
        # A weighted random order without replacement (Efraimidis-Spirakis): key u^(1/w), largest first.
        keyed = [(self.rng.random() ** (1.0 / t.weight), i) for i, t in enumerate(tier)]
        return [tier[i] for _, i in sorted(keyed, reverse=True)]

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def can_attempt(self) -> bool:
        left = self.remaining()
        return self.attempts < self.max_attempts and (left is None or left > 0)

    def attempt_timeout(self, target: Target) -> float | None:
        """The attempt's timeout: the provider's, cut to what is left of the deadline (None: the provider's)."""
        left = self.remaining()
        if left is None or left >= target.model.provider.timeout_seconds:
            return None
        return left

    def skip(self, target: Target, reason: str) -> None:
        self.skipped.append(reason)

    def attempted(self) -> None:
        self.attempts += 1
        self.pass_attempts += 1

    def worst_case(self, input_tokens: int, max_output_tokens: int | None) -> Decimal | None:
        """The most this call could cost on any deployment it may reach (None: one of them is unpriced)."""
        worst = Decimal(0)
        for target in self.route.targets:
            if not self.eligible(target):
                continue
            most = target.model.max_output_tokens if max_output_tokens is None else max_output_tokens
            price = target.price()
            if price is None:
                return None
            worst = max(worst, worst_case_cost(price, input_tokens, most))
        return worst

    @property
    def fallbacks(self) -> int:
        """Failed attempts before the current one, on an alias (a single model's retries are not fallbacks)."""
        return max(0, self.attempts - 1) if self.route.routed else 0

    def failed(self, target: Target, exc: LlmError) -> bool:
        """An attempt on `target` failed with `exc`: True to try on (another deployment or a later pass)."""
        go_on = self._go_on(target, exc)
        if go_on and self.route.routed:
            metrics.FALLBACKS.labels(self.route.alias, exc.error_type).inc()
        return go_on

    def _go_on(self, target: Target, exc: LlmError) -> bool:
        self.last_error = exc
        if isinstance(exc, StreamInterrupted):
            return False
        if isinstance(exc, ContextLengthExceeded) and self.route.routed:
            self.min_context = max(self.min_context, target.model.context_window)
            return True
        if isinstance(exc, BadRequest):
            return False
        if exc.retryable:
            self.retry_error = exc
        return self.route.routed or exc.retryable

    @staticmethod
    def breaker_outcome(exc: BaseException) -> str:
        """How a failure counts against the deployment's breaker: a bad request is the caller's, not its."""
        return "none" if isinstance(exc, BadRequest) and not isinstance(exc, ContextLengthExceeded) else "fail"

    def pass_wait(self) -> float:
        """After a pass without an answer: seconds to wait before the next, or raise the error to give up with."""
        self.passes += 1
        error = self.retry_error
        if error is None or not self.can_attempt():
            raise self.final_error()
        wait = retry_wait(error, self.passes - 1, self.policy)  # raises when retries are spent or the wait is long
        left = self.remaining()
        if left is not None and wait >= left:
            raise self.final_error()
        return wait

    def final_error(self) -> LlmError:
        if self.last_error is not None:
            return self.last_error
        if self.route.routed and self.skipped:
            reasons = {"open": "circuit breaker open", "busy": "at its concurrency limit",
                       "limited": "at its requests-per-minute limit"}
            why = ", ".join(sorted({reasons.get(r, r) for r in self.skipped}))
            return ProviderUnavailable(f"No deployment of '{self.route.name}' can take the call now ({why}).",
                                       retry_after=float(settings.LLM_BREAKER_COOLDOWN_SECONDS))
        if self.route.routed and self.min_context:
            return ContextLengthExceeded(f"No deployment of '{self.route.name}' has a context window large enough.")
        if self.route.routed and not self.can_attempt():
            return ProviderUnavailable(f"'{self.route.name}' ran out of time ({self.route.deadline_seconds:g} s).")
        return ProviderUnavailable(f"No deployment of '{self.route.name}' can take this request (max_tokens or "
                                   "context window).")
