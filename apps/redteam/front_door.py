"""A gateway-key campaign goes through the gateway's `/v1/` front door as the key's application does (ADR 0119):
the official SDK's `AsyncOpenAI` against GATEWAY_BASE_URL, with the secret of a key minted for the worker's run.

- **The key**: the target key's secret is only a hash, so each worker task mints a *twin* of it (gateway's
  `gateway_key_twin`: the same team, feature, use case, aliases, limits, dollars per day, cache and body options,
  guardrails and expiry; its own secret), keeps the secret in memory only, and revokes the twin when its run
  ends. `CampaignKey` ties it to the campaign; the beat job revokes the twins a dead worker left.
- **The ledger**: the gateway records each call (its recorder); the runner records none of them. An attack keeps
  the call's `X-Portal-Request-Id`; the campaign's spend is read back from the ledger by the twins' ids.
- **What an answer means**: a guardrail block (400 `content_policy_violation`) is a defended attack, decided by
  `guardrail`, the policy's message kept as evidence. A key limit (429 `key_limit`) is not an attack result: every
  worker of the run waits its `Retry-After` (up to LIMIT_WAIT_SECONDS) and the attack is sent again; a longer wait
  (a daily window), a budget (429 `insufficient_quota`) or an admission refusal (423) marks the attack, and every
  later one of the run, **not run** (unscored, never defended nor breached). Upstream failures (5xx, an upstream
  429, a dropped connection) are retried with backoff like the call path's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
import openai
from django.conf import settings
from django.db.models import OuterRef, Q, Subquery, Sum

from apps.costs.models import UsageEvent
from apps.gateway.guard import CODE as GUARDRAIL_CODE
from apps.gateway.services import gateway_key_revoke, gateway_key_twin
from apps.redteam.models import Attack, Campaign, CampaignKey

LIMIT_WAIT_SECONDS = 60.0  # a key limit that frees up within this is waited for; a longer one: "not run"
LIMIT_WAITS = 20  # times one attack may wait for a key limit before it is "not run"
TIMEOUT_SECONDS = 120.0
NOT_RUN = "not run: "  # the error prefix of an attack the front door refused for a reason that is not the attack


@dataclass(frozen=True)
class Answer:
    """What the runner reads of a call (as of the call path's ChatResult): the cost is the gateway ledger's."""

    text: str
    request_id: str
    cost: None = None


class Blocked(Exception):
    """The key's guardrail policy refused the request or the answer: the attack was defended."""


class NotRun(Exception):
    """The front door refused for a reason that is not the attack (a limit, a budget, the use case, an incident)."""


class Retry(Exception):
    """The upstream or the connection failed: try the attack again later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None


def classify(exc: Exception) -> Exception:
    """The runner's reading of an SDK error: Blocked, NotRun, Retry, or the error itself (an attack error)."""
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return Retry(f"{type(exc).__name__}: {exc}")
    if not isinstance(exc, openai.APIStatusError):
        return exc
    message = str(getattr(exc, "message", "") or exc)
    code = getattr(exc, "code", None) or ""
    if exc.status_code == 400 and code == GUARDRAIL_CODE:
        return Blocked(message)
    if exc.status_code == 423 or (exc.status_code == 429 and code in ("key_limit", "insufficient_quota")):
        return NotRun(f"{exc.status_code} {code or 'refused'}: {message}")
    if exc.status_code == 429 or exc.status_code >= 500:
        return Retry(f"{exc.status_code} {code}: {message}", _retry_after(exc))
    return exc


class FrontDoor:
    """One worker task's client of the front door. The secret lives here, in memory, for the run only."""

    def __init__(self, secret: str, *, alias: str, max_tokens: int | None, concurrency: int,
                 base_url: str | None = None):
        self._secret = secret
        self.alias, self.max_tokens = alias, max_tokens
        self.base_url = (base_url or settings.GATEWAY_BASE_URL).rstrip("/")
        self.concurrency = concurrency
        self.client: openai.AsyncOpenAI | None = None
        self.hold_until = 0.0  # a key limit: no worker of this run calls before then
        self.closed = ""  # why the front door refuses this run for good (a daily limit, a budget, the use case)

    def __repr__(self) -> str:
        return f"FrontDoor({self.base_url!r}, alias={self.alias!r})"  # never the secret

    def open(self) -> None:
        """On the event loop (the SDK's HTTP client belongs to it)."""
        pool = httpx.Limits(max_connections=self.concurrency + 2, max_keepalive_connections=self.concurrency + 2)
        self.client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._secret, max_retries=0,
                                         timeout=TIMEOUT_SECONDS, http_client=httpx.AsyncClient(limits=pool))

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def call(self, messages: list[dict]) -> Answer:
        """One chat completion as the key's application sends it. Raises Blocked, NotRun, Retry (or an SDK error
        that is the attack's error)."""
        for _wait in range(LIMIT_WAITS + 1):
            if self.closed:
                raise NotRun(self.closed)
            pause = self.hold_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                raw = await self.client.chat.completions.with_raw_response.create(
                    model=self.alias, messages=messages, max_tokens=self.max_tokens)
            except Exception as exc:  # noqa: BLE001 - read by classify(); anything else is raised as it is
                reading = classify(exc)
                if isinstance(reading, NotRun) and getattr(exc, "code", "") == "key_limit":
                    wait = _retry_after(exc)
                    if wait is not None and wait <= LIMIT_WAIT_SECONDS:
                        self.hold_until = max(self.hold_until, time.monotonic() + max(wait, 0.05))
                        continue
                if isinstance(reading, NotRun):
                    self.closed = str(reading)
                raise reading from exc
            completion = raw.parse()
            text = (completion.choices[0].message.content or "") if completion.choices else ""
            return Answer(text=text, request_id=raw.headers.get("x-portal-request-id", ""))
        raise NotRun(f"429 key_limit: still limited after {LIMIT_WAITS} waits")


def blocked_evidence(message: str) -> dict:
    return {"success": False, "decided_by": "guardrail", "guardrail": message,
            "detectors": [{"name": "guardrail", "hit": True, "detail": f"blocked by the gateway: {message}"}]}


# --- the run's key (the database thread) ------------------------------------------------------------------------

def mint(campaign: Campaign, owner: str) -> tuple[CampaignKey, str]:
    """A twin of the campaign's target key for this worker's run: (its row, its secret, kept by the caller only)."""
    issued = gateway_key_twin(key=campaign.gateway_key, name=f"red team: campaign {campaign.pk}")
    row = CampaignKey.objects.create(campaign=campaign, key=issued.key, owner=owner[:200])
    return row, issued.secret


def revoke(rows) -> int:
    """Revoke the run keys given (the end of a run, or the beat's sweep); returns how many were still active."""
    revoked = 0
    for row in rows:
        if row.key.revoked_at is None:
            gateway_key_revoke(key=row.key)
            revoked += 1
    return revoked


def read_back_costs(campaign_id: int) -> Decimal:
    """Each front-door attack's cost from its ledger row (by request id), and the campaign's spend: every call its
    run keys made (refusals cost 0) and its own calls (a live attacker's). Calls the gateway's recorder has not
    written yet are not there yet; the beat job reads them back later (`refresh_spend`)."""
    ledger = UsageEvent.objects.filter(request_id=OuterRef("request_id")).values("cost")[:1]
    Attack.objects.filter(campaign_id=campaign_id, cost__isnull=True).exclude(request_id="").update(
        cost=Subquery(ledger))
    campaign = Campaign.objects.only("team_id", "created_at").get(pk=campaign_id)
    keys = CampaignKey.objects.filter(campaign_id=campaign_id).values("key_id")
    spend = (UsageEvent.objects  # (team, occurred_at) is the ledger's index; the keys and feature filter within
             .filter(team_id=campaign.team_id, occurred_at__gte=campaign.created_at)
             .filter(Q(gateway_key_id__in=keys) | Q(feature=f"redteam-campaign-{campaign_id}"))
             .aggregate(total=Sum("cost"))["total"])
    return spend or Decimal(0)


def refresh_spend(since) -> int:
    """The beat job: gateway-key campaigns finished since `since` get their spend read back again (the gateway's
    recorder writes a call shortly after it is answered)."""
    ids = list(Campaign.objects.filter(finished_at__gte=since, run_keys__isnull=False).values_list("pk", flat=True)
               .distinct())
    for campaign_id in ids:
        Campaign.objects.filter(pk=campaign_id).update(spend=read_back_costs(campaign_id))
    return len(ids)
