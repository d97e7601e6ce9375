"""EU AI Act Art. 73 (ADR 0086): is an incident a serious incident to report, by when, and the report itself.

Regulation (EU) 2024/1689:
- Art. 3(49): a *serious incident* is an incident or malfunctioning of an AI system that directly or indirectly
  leads to (a) the death of a person or serious harm to a person's health; (b) a serious and irreversible
  disruption of the management or operation of critical infrastructure; (c) the infringement of obligations
  under Union law intended to protect fundamental rights; (d) serious harm to property or the environment.
- Art. 73(1): providers of high-risk AI systems report serious incidents to the market surveillance authorities
  of the Member States where they occurred; deployers inform the provider immediately (Art. 26(5)).
- Art. 73(2): immediately after a causal link (or its reasonable likelihood) is established, and not later than
  **15 days** after the provider or, where applicable, the deployer becomes aware of the serious incident.
- Art. 73(3): a *widespread infringement* (Art. 3(61)) or a serious incident under Art. 3(49)(b): immediately,
  and not later than **2 days** after becoming aware.
- Art. 73(4): the death of a person: immediately, and not later than **10 days** after becoming aware.
- Art. 73(5): an initial report may be incomplete and be completed later.
When several apply, the shortest deadline is shown. The portal computes and shows; it does not file anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import user_of
from apps.audit.services import audit_record
from apps.incidents import rules
from apps.incidents.models import Incident, PostIncidentReview, RegulatoryAssessment, SeriousCategory
from apps.incidents.services import _clean_list, clean_text
from apps.reviews.rules import HIGH

# (days, paragraph, why) per trigger; the shortest applicable one is the deadline.
GENERAL = (15, "Art. 73(2)", "serious incident: not later than 15 days after becoming aware")
DEATH = (10, "Art. 73(4)", "death of a person: not later than 10 days after becoming aware")
WIDESPREAD_OR_INFRASTRUCTURE = (2, "Art. 73(3)", "widespread infringement or serious and irreversible disruption "
                                                 "of critical infrastructure: not later than 2 days after "
                                                 "becoming aware")
ASSESSMENT_FIELDS = ("eu_users", "category", "widespread_infringement", "aware_at", "member_states", "causal_link",
                     "corrective_actions", "reporter", "system_registration", "reported_at", "report_reference")


@dataclass(frozen=True)
class Deadline:
    days: int
    paragraph: str
    why: str
    aware_at: datetime
    due_at: datetime

    @property
    def overdue(self) -> bool:
        return timezone.now() > self.due_at


def reporting_deadline(*, category: str, widespread_infringement: bool, aware_at: datetime) -> Deadline | None:
    """The Art. 73 deadline for a serious incident (None when it is not one). Pure: no database."""
    if not category and not widespread_infringement:
        return None
    rules_ = [GENERAL]
    if category == SeriousCategory.DEATH:
        rules_.append(DEATH)
    if category == SeriousCategory.CRITICAL_INFRASTRUCTURE or widespread_infringement:
        rules_.append(WIDESPREAD_OR_INFRASTRUCTURE)
    days, paragraph, why = min(rules_)
    return Deadline(days, paragraph, why, aware_at, aware_at + timedelta(days=days))


def high_risk_use_cases(incident: Incident) -> list:
    return [u for u in incident.use_cases.all() if u.tier == HIGH]


def eu_use_cases(incident: Incident) -> list:
    return [u for u in incident.use_cases.all() if "eu" in ((u.answers or {}).get("geographies") or [])]


def assessment_of(incident: Incident) -> RegulatoryAssessment | None:
    return RegulatoryAssessment.objects.filter(incident=incident).first()


@dataclass(frozen=True)
class Art73Status:
    applies: bool  # a serious incident affecting EU users of a high-risk use case
    high_risk: list
    deadline: Deadline | None
    assessment: RegulatoryAssessment | None
    suggested_eu_users: bool

    @property
    def overdue(self) -> bool:
        """Past the deadline and not reported yet."""
        return bool(self.deadline and self.deadline.overdue and not (self.assessment and self.assessment.reported_at))


def art73_status(incident: Incident) -> Art73Status:
    assessment = assessment_of(incident)
    high = high_risk_use_cases(incident)
    deadline = None
    if assessment is not None:
        deadline = reporting_deadline(category=assessment.category,
                                      widespread_infringement=assessment.widespread_infringement,
                                      aware_at=assessment.aware_at or incident.detected_at)
    applies = bool(high) and assessment is not None and assessment.eu_users and deadline is not None
    return Art73Status(applies, high, deadline if applies else None, assessment, bool(eu_use_cases(incident)))


def _time(name, value):
    if value in (None, ""):
        return None
    if not isinstance(value, datetime):
        raise ValidationError({name: "A date and time."})
    value = timezone.make_aware(value) if timezone.is_naive(value) else value
    if value > timezone.now() + timedelta(minutes=5):
        raise ValidationError({name: "This time is in the future."})
    return value


@transaction.atomic
def assessment_save(*, incident: Incident, actor, **values) -> RegulatoryAssessment:
    """Record (or change) the Art. 73 assessment of an incident; the people who may change the incident may."""
    if not rules.may_update(actor, incident):
        raise PermissionDenied("Only engineers of the incident's teams and council members assess it.")
    unknown = set(values) - set(ASSESSMENT_FIELDS)
    if unknown:
        raise TypeError(f"assessment_save() got unexpected keyword arguments {sorted(unknown)}")
    cleaned, errors = {}, {}
    for name, value in values.items():
        try:
            if name in ("eu_users", "widespread_infringement"):
                cleaned[name] = bool(value)
            elif name == "category":
                if (value or "") not in SeriousCategory.values:
                    raise ValidationError({name: "Choose one of the Art. 3(49) categories."})
                cleaned[name] = value or ""
            elif name in ("aware_at", "reported_at"):
                cleaned[name] = _time(name, value)
            elif name == "member_states":
                cleaned[name] = [s.upper() for s in _clean_list(name, value)]
            elif name in ("reporter", "system_registration", "report_reference"):
                cleaned[name] = clean_text(name, value, limit=200 if name == "reporter" else 100)
            else:
                cleaned[name] = clean_text(name, value, limit=10_000)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    assessment, created = RegulatoryAssessment.objects.select_for_update().get_or_create(incident=incident)
    changes = {}
    for name, value in cleaned.items():
        if getattr(assessment, name) != value:
            changes[name] = [getattr(assessment, name), value]
            setattr(assessment, name, value)
    if not changes and not created:
        return assessment
    assessment.updated_at, assessment.updated_by = timezone.now(), user_of(actor)
    assessment.save()
    audit_record(action="incident.art73_assessment", obj=incident, actor=actor,
                 changes={"created": created, **{k: v for k, v in changes.items()
                                                 if k not in ("causal_link", "corrective_actions")}})
    return assessment


# -- the report (what a market surveillance authority asks for) -------------------------------------------------
def art73_report(incident: Incident) -> dict:
    """The report's fields, for the JSON, Markdown and printable HTML exports. Initial until the review is
    signed off (Art. 73(5) allows an incomplete initial report)."""
    status = art73_status(incident)
    a = status.assessment or RegulatoryAssessment(incident=incident)
    review = PostIncidentReview.objects.filter(incident=incident).first()
    use_cases = list(incident.use_cases.all())
    deadline = status.deadline
    return {
        "report": {"kind": "complete" if review is not None and review.signed_off_at else "initial",
                   "generated_at": timezone.now().isoformat(), "reference": a.report_reference or None,
                   "submitted_at": a.reported_at.isoformat() if a.reported_at else None},
        "reporter": {"organisation_and_contact": a.reporter or None,
                     "incident_commander": incident.commander.get_username() if incident.commander else None,
                     "role_under_ai_act": ", ".join(sorted({(u.answers or {}).get("ai_act_role") or "unknown"
                                                            for u in use_cases}))},
        "ai_system": {"use_cases": [{"id": u.pk, "title": u.title, "risk_tier": u.tier,
                                     "annex_iii_area": (u.answers or {}).get("annex_iii_area")} for u in use_cases],
                      "eu_database_registration": a.system_registration or None,
                      "models_or_deployments": incident.deployments, "prompt_versions": incident.prompt_versions,
                      "features": incident.features},
        "incident": {"reference": incident.reference, "title": incident.title, "description": incident.summary,
                     "type": incident.get_kind_display(), "severity": incident.get_severity_display(),
                     "serious_category": a.get_category_display() if a.category else None,
                     "widespread_infringement": a.widespread_infringement,
                     "member_states": a.member_states, "eu_users_affected": a.eu_users,
                     "occurred_at": (incident.started_at or incident.detected_at).isoformat(),
                     "detected_at": incident.detected_at.isoformat(),
                     "aware_at": (a.aware_at or incident.detected_at).isoformat(),
                     "mitigated_at": incident.mitigated_at.isoformat() if incident.mitigated_at else None,
                     "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None},
        "deadline": {"days": deadline.days, "article": deadline.paragraph, "rule": deadline.why,
                     "due_at": deadline.due_at.isoformat()} if deadline else None,
        "harm": {"customer_impact": incident.customer_impact, "harm_categories": incident.harm_categories,
                 "affected_groups": incident.affected_groups, "tenants": incident.tenants},
        "causal_link": a.causal_link or None,
        "root_causes": [{"category": c.get_category_display(), "description": c.description}
                        for c in (review.root_causes.all() if review is not None else [])],
        "corrective_actions": {
            "summary": a.corrective_actions or None,
            "mitigations": [{"switch": m.get_kind_display(), "target": m.target_label,
                             "applied_at": m.applied_at.isoformat(),
                             "undone_at": m.undone_at.isoformat() if m.undone_at else None}
                            for m in incident.mitigations.order_by("applied_at")],
            "action_items": [{"title": i.title, "due_date": i.due_date.isoformat(), "status": i.get_status_display()}
                             for i in incident.action_items.all()]},
        "timeline": [{"at": e.at.isoformat(), "kind": e.get_kind_display(), "text": e.text, "by": e.actor_label}
                     for e in incident.timeline.order_by("at", "id")],
    }


def report_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def _md_value(value) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value).replace("\n", " ")


def report_markdown(report: dict) -> str:
    """The same fields as Markdown (what a person pastes into an authority's form)."""
    inc = report["incident"]
    lines = [f"# Serious incident report (EU AI Act Art. 73): {inc['reference']} {inc['title']}", "",
             f"Report: {report['report']['kind']} · generated {report['report']['generated_at']}", ""]
    if report["deadline"]:
        d = report["deadline"]
        lines += [f"**Deadline: {d['due_at']}** ({d['article']}: {d['rule']}).", ""]
    for section in ("reporter", "incident", "harm"):
        lines += [f"## {section.replace('_', ' ').capitalize()}", ""]
        lines += [f"- {k.replace('_', ' ')}: {_md_value(v)}" for k, v in report[section].items()]
        lines.append("")
    lines += ["## AI system", "", f"- EU database registration: {_md_value(report['ai_system']['eu_database_registration'])}",
              f"- models or deployments: {_md_value(report['ai_system']['models_or_deployments'])}",
              f"- prompt versions: {_md_value(report['ai_system']['prompt_versions'])}"]
    lines += [f"- use case #{u['id']} {u['title']} (risk tier {u['risk_tier'] or '—'}, Annex III area "
              f"{u['annex_iii_area'] or '—'})" for u in report["ai_system"]["use_cases"]]
    lines += ["", "## Causal link", "", _md_value(report["causal_link"]), "", "## Root causes", ""]
    lines += [f"- {c['category']}: {c['description']}" for c in report["root_causes"]] or ["—"]
    ca = report["corrective_actions"]
    lines += ["", "## Corrective actions", "", _md_value(ca["summary"]), ""]
    lines += [f"- {m['switch']} on {m['target']} from {m['applied_at']} to {m['undone_at'] or 'now'}"
              for m in ca["mitigations"]]
    lines += [f"- action: {i['title']} (due {i['due_date']}, {i['status']})" for i in ca["action_items"]]
    lines += ["", "## Timeline", ""]
    lines += [f"- {e['at']} {e['kind']} ({e['by']}): {e['text']}" for e in report["timeline"]]
    return "\n".join(lines) + "\n"
