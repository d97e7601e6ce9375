"""Where a call goes: a name resolves to a Route (an alias's deployments, or one catalog model).

Routes are cached in process: the hot path never queries the database per request. Every process checks a
stamp in Redis at most every LLM_ROUTES_CHECK_SECONDS; a change to a provider, model, price, alias or
deployment replaces the stamp on commit (signals connected in hooks.py), so every process drops its routes
within that interval. A Redis outage means the cache is dropped at every check (fresh, slower, never stale).
Names that resolve to nothing are cached too, so unknown names cannot hammer the database.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core import redis as core_redis
from apps.costs.models import Price
from apps.costs.pricing import PriceBook
from apps.llm.errors import BadRequest, ModelNotFound
from apps.llm.models import Model, ModelKind

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

    def price(self, at: datetime | None = None) -> Price | None:
        """The price valid at `at` from the cached price book (no query); None when unpriced or not loaded."""
        if self.prices is None:
            return None
        return self.prices.at(self.model.priced_as, self.model.provider.name, at or timezone.now())


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


def model_problem(model: Model) -> str:
    if not model.is_active or not model.provider.is_active:
        return f"The model '{model.name}' is disabled in the catalog."
    return ""


def route_for_model(model: Model, prices: PriceBook | None = None) -> Route:
    """A route to one catalog model (no alias)."""
    return Route(name=model.name, kind=model.kind, targets=(Target(model=model, prices=prices),),
                 missing=model_problem(model))


def load_route(name: str) -> Route:
    """Build the route for `name` from the database (a cache miss)."""
    model = Model.objects.select_related("provider").filter(name=name).first()
    if model is None:
        return Route(name=name, kind="", targets=(),
                     missing=f"There is no model named '{name}' in the catalog (see Models & prices).")
    return route_for_model(model, PriceBook.load([model.priced_as]))


class _Cache:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.stamp: bytes | None = None
        self.checked = 0.0

    def clear(self) -> None:
        self.routes = {}

    def seen(self, stamp: bytes | None) -> None:
        """The stamp read from Redis (None: unreadable): routes built under another stamp are dropped."""
        if stamp is None or stamp != self.stamp:
            self.routes = {}
        self.stamp = stamp
        self.checked = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.checked >= settings.LLM_ROUTES_CHECK_SECONDS


_cache = _Cache()


def _stamp_key() -> str:
    return core_redis.key(*STAMP_PARTS)


def resolve(name: str) -> Route:
    """The route for `name` (sync callers); from the process cache when its stamp is current."""
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
    if route is None:
        route = await sync_to_async(load_route)(name)
        _cache.routes[name] = route
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
