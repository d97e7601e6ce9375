"""The costs app's settings, read from Django settings with these defaults (see docs/costs.md):

COSTS_RAW_RETENTION_DAYS       raw usage events older than this are deleted nightly; rollups are kept (400)
COSTS_HOURLY_ROLLUP_DAYS       hourly rollups are kept this many days (8; dashboards use the last 7)
COSTS_RESERVATION_TTL_SECONDS  a budget reservation not settled by then is released by the sweeper (1800)
COSTS_ANOMALY_FACTOR           today's spend above this many times the trailing 7-day average is an anomaly (3)
COSTS_ANOMALY_MIN_AMOUNT       ... and above this many dollars (10)
COSTS_INGEST_MAX_EVENTS        events per POST /api/v1/usage batch (1000)
COSTS_INGEST_FUTURE_SKEW_SECONDS  events dated more than this ahead of the portal's clock are refused (300)

The settings module maps them to environment variables (docs/configuration.md), like every other setting.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

DEFAULTS = {
    "COSTS_RAW_RETENTION_DAYS": 400,
    "COSTS_HOURLY_ROLLUP_DAYS": 8,
    "COSTS_RESERVATION_TTL_SECONDS": 1800,
    "COSTS_ANOMALY_FACTOR": "3",
    "COSTS_ANOMALY_MIN_AMOUNT": "10",
    "COSTS_INGEST_MAX_EVENTS": 1000,
    "COSTS_INGEST_FUTURE_SKEW_SECONDS": 300,
}


def _get(name: str):
    value = getattr(settings, name, None)
    return DEFAULTS[name] if value is None else value


def raw_retention_days() -> int:
    return int(_get("COSTS_RAW_RETENTION_DAYS"))


def hourly_rollup_days() -> int:
    return int(_get("COSTS_HOURLY_ROLLUP_DAYS"))


def reservation_ttl_seconds() -> int:
    return int(_get("COSTS_RESERVATION_TTL_SECONDS"))


def anomaly_factor() -> Decimal:
    return Decimal(str(_get("COSTS_ANOMALY_FACTOR")))


def anomaly_min_amount() -> Decimal:
    return Decimal(str(_get("COSTS_ANOMALY_MIN_AMOUNT")))


def ingest_max_events() -> int:
    return int(_get("COSTS_INGEST_MAX_EVENTS"))


def ingest_future_skew_seconds() -> int:
    return int(_get("COSTS_INGEST_FUTURE_SKEW_SECONDS"))
