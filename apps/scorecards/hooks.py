"""What scorecards registers into lower apps at start-up, in one place (docs/architecture.md, "The registries"):
the `scorecard_kpi` condition predicate (reviews), the compact scorecard on the use-case page and its column in
the council's register (reviews' panels), the refresh task for `task_queue`, and the reader of incidents'
`kpi_missed` detection signal. Called once, from
`ScorecardsConfig.ready()`.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from apps.core.tasks import tasks_register
from apps.incidents.detection import signal_source_register
from apps.incidents.models import Signal
from apps.reviews.conditions import register_predicate
from apps.reviews.panels import register_register_column, register_use_case_panel
from apps.scorecards import conditions, selectors, tasks
from apps.scorecards.models import Status

_CSS = {Status.MET: "ok", Status.AT_RISK: "warn", Status.MISSED: "bad"}


def use_case_panel(*, use_case, user) -> dict:
    """The compact scorecard: every KPI as a coloured value linking to its row on the full page."""
    snapshot = selectors.snapshot_of(use_case)
    cells = selectors.portfolio_rows([snapshot])[0]["cells"] if snapshot else []
    html = render_to_string("scorecards/partials/_compact.html",
                            {"snapshot": snapshot, "cells": cells, "use_case_id": use_case.pk})
    return {"title": "KPI scorecard", "html": html}


def register_cells(*, use_case_ids, user) -> dict:
    """The register's "Scorecard" column: met / at risk / missed counts, linking to the scorecard."""
    out = {}
    for uc, c in selectors.compact_cells(use_case_ids).items():
        out[uc] = format_html('<a class="badge {}" href="{}" title="met · at risk · missed">{} · {} · {}</a>',
                              _CSS.get(c["status"], ""), reverse("scorecards:use_case", args=[uc]), c["met"],
                              c["at_risk"], c["missed"])
    return out


def register() -> None:
    register_predicate(conditions.KEY, conditions.LABEL, conditions.PARAMS, conditions.evaluate)
    register_use_case_panel("scorecard", use_case_panel)
    register_register_column("scorecard", "Scorecard", register_cells)
    tasks_register(tasks.scorecards_refresh_task)
    signal_source_register(Signal.KPI_MISSED, selectors.missed_kpi_findings)
