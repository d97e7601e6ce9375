"""The navigation: one list of areas, each with the URL of its first page."""

from dataclasses import dataclass

from django.urls import reverse


@dataclass(frozen=True)
class Area:
    key: str
    label: str
    url_name: str
    summary: str


AREAS = (
    Area("prompts", "Prompts", "prompts:list", "Prompt catalog, versions, labels and release gates"),
    Area("reviews", "Use cases", "reviews:list", "Use-case intake, risk tiering and council review"),
    Area("evals", "Evals", "evals:list", "Golden datasets, evaluators, eval runs and gates"),
    Area("gateway", "Gateway", "gateway:keys", "OpenAI-compatible /v1 front door: keys, limits, request log"),
    Area("costs", "Costs", "costs:dashboard", "Spend by team, feature, tenant and model; budgets"),
    Area("rag", "RAG", "rag:list", "Collections, indexing, hybrid retrieval and grounded answers"),
    Area("incidents", "Incidents", "incidents:list", "Incidents, one-click mitigations on live traffic, what is switched now"),
    Area("slos", "SLOs", "slos:overview", "Service-level objectives per use case: error budgets, burn-rate alerts"),
    Area("audit", "Audit", "audit:list", "Append-only, hash-chained log of every change"),
)


def area_url(area: Area) -> str:
    return reverse(area.url_name)
