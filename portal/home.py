"""The home page summary: one small read per area, each restricted to what the viewer may see.

Spend is not computed here: the costs glance (`apps.costs.selectors.spend_summary`, loaded by htmx) is the one
"last 30 days" figure, the same as on the Costs and Prices pages.
"""

from dataclasses import dataclass, field

from apps.accounts.selectors import team_list
from apps.audit.selectors import audit_event_list
from apps.core.demo_status import demo_loading
from apps.llm.selectors import model_list, models_in_usage
from apps.scorecards.selectors import missed_for


@dataclass
class HomeSummary:
    teams: list = field(default_factory=list)
    recent_events: list = field(default_factory=list)
    model_count: int = 0  # configured in the portal's catalog (/models/)
    usage_model_count: int = 0  # model names in the usage ledger, last 30 days (portal calls and ingested usage)
    demo_loading: bool = False
    scorecards: list = field(default_factory=list)  # the viewer's use cases with KPIs missed or at risk


def home_summary(*, actor) -> HomeSummary:
    return HomeSummary(
        teams=list(team_list(actor=actor)[:12]),
        recent_events=list(audit_event_list(actor=actor)[:8]),
        model_count=model_list().count(),
        usage_model_count=len(models_in_usage(actor=actor)),
        demo_loading=demo_loading(),
        scorecards=missed_for(actor=actor),
    )
