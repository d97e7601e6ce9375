"""The pages after and around an incident: the post-incident review (with root causes, action items and the
sign-off), runbooks, the EU AI Act Art. 73 assessment and report export, the metrics page and the detection
suggestions. Thin: parse → service/selector → render."""

from __future__ import annotations

from datetime import datetime, time

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, teams_for
from apps.core.charts import category_lines, stacked_bars, to_html
from apps.core.forms import apply_service_errors
from apps.incidents import detection, metrics, postmortems, regulatory, rules, runbooks, selectors
from apps.incidents.followup_forms import (
    ActionItemForm,
    ActionStatusForm,
    AssessmentForm,
    MetricsFilterForm,
    ReviewForm,
    RootCauseForm,
    RunbookForm,
)
from apps.incidents.models import IncidentType, Severity
from apps.incidents.services import MAX_ID
from apps.reviews import selectors as review_selectors


def followup_context(user, incident) -> dict:
    """What the incident page shows below the record: review state, runbooks, the Art. 73 deadline."""
    review = postmortems.review_of(incident)
    return {"review": review, "review_due": postmortems.review_due_date(incident),
            "runbooks": runbooks.runbooks_for_incident(incident), "art73": regulatory.art73_status(incident),
            "open_actions": postmortems.action_items_of(incident).filter(status__in=("open", "in_progress"))}


# -- the review ----------------------------------------------------------------------------------------------
def _review_page(request, incident, *, status=200, **forms):
    review = postmortems.review_of(incident)
    initial = {}
    if review is not None:
        initial = {name: getattr(review, name) for name in postmortems.REVIEW_FIELDS}
        initial["contributing_factors"] = "\n".join(review.contributing_factors)
    else:
        initial = {"summary": incident.summary, "impact": incident.customer_impact}
    may_write = rules.may_update(request.user, incident)
    context = {
        "incident": incident, "review": review, "timeline": selectors.timeline(incident),
        "root_causes": review.root_causes.all() if review else [],
        "action_items": postmortems.action_items_of(incident),
        "locked": postmortems.is_locked(review, incident), "may_write": may_write,
        "may_sign_off": rules.may_close(request.user, incident),
        "sign_off_problems": postmortems.sign_off_problems(incident, review),
        "review_due": postmortems.review_due_date(incident), "runbooks": runbooks.runbooks_for_incident(incident),
        "review_form": forms.get("review_form") or ReviewForm(initial=initial),
        "cause_form": forms.get("cause_form") or RootCauseForm(),
        "action_form": forms.get("action_form") or ActionItemForm(people=postmortems.owner_choices(incident)),
        "status_choices": ActionStatusForm().fields["status"].choices,
        "today": timezone.localdate(),
    }
    return render(request, "incidents/review.html", context, status=status)


@login_required
@require_GET
def review_detail(request, pk: int):
    return _review_page(request, selectors.incident_get(actor=request.user, pk=pk))


def _after(request, incident, form_name: str, form, call) -> HttpResponse:
    """Run `call(form.cleaned_data)` when the form is valid; errors come back on the page (400)."""
    if form.is_valid():
        try:
            call(form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return redirect(reverse("incidents:review", args=[incident.pk]))
    return _review_page(request, incident, status=400, **{form_name: form})


@login_required
@require_POST
def review_save(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    form = ReviewForm(request.POST)
    return _after(request, incident, "review_form", form, lambda data: postmortems.review_save(
        incident=incident, actor=request.user, **form.service_values()))


@login_required
@require_POST
def root_cause_add(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    form = RootCauseForm(request.POST)
    return _after(request, incident, "cause_form", form, lambda data: postmortems.root_cause_add(
        incident=incident, actor=request.user, **data))


@login_required
@require_POST
def root_cause_remove(request, pk: int, cause_pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    try:
        postmortems.root_cause_remove(incident=incident, actor=request.user, cause_id=cause_pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(reverse("incidents:review", args=[incident.pk]))


@login_required
@require_POST
def action_item_add(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    form = ActionItemForm(request.POST, people=postmortems.owner_choices(incident))
    return _after(request, incident, "action_form", form, lambda data: postmortems.action_item_add(
        incident=incident, actor=request.user, **data))


@login_required
@require_POST
def action_item_status(request, pk: int, item_pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    form = ActionStatusForm(request.POST)
    try:
        item = postmortems.action_item_get(incident=incident, pk=item_pk)
        if not form.is_valid():
            raise ValidationError({"status": "Choose a status."})
        postmortems.action_item_set_status(item=item, actor=request.user, status=form.cleaned_data["status"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(reverse("incidents:review", args=[incident.pk]))


@login_required
@require_POST
def review_sign_off(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    try:
        postmortems.review_sign_off(incident=incident, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Review of {incident.reference} signed off; the incident is closed.")
    return redirect(reverse("incidents:review", args=[incident.pk]))


# -- runbooks ------------------------------------------------------------------------------------------------
@login_required
@require_GET
def runbook_list(request):
    return render(request, "incidents/runbooks.html", {"runbooks": runbooks.runbook_list(),
                                                        "may_write": runbooks.may_write(request.user),
                                                        "kinds": IncidentType.choices})


@login_required
@require_GET
def runbook_detail(request, pk: int):
    runbook = runbooks.runbook_get(actor=request.user, pk=pk)
    return render(request, "incidents/runbook.html", {
        "runbook": runbook, "html": runbooks.runbook_html(runbook),
        "may_write": runbooks.may_write(request.user, runbook.use_case)})


@login_required
@require_http_methods(["GET", "POST"])
def runbook_edit(request):
    """Create or replace the runbook of a type (`?kind=`) and optionally a use case (`?use_case=`)."""
    use_case_id = request.GET.get("use_case") or request.POST.get("use_case") or ""
    if use_case_id and not (use_case_id.isdigit() and 1 <= int(use_case_id) <= MAX_ID):
        raise Http404("No use case matches the given query.")
    use_case = review_selectors.use_case_get(actor=request.user, pk=int(use_case_id)) if use_case_id else None
    if not runbooks.may_write(request.user, use_case):
        raise PermissionDenied("Council members write the portal's runbooks; a use case's team writes its own.")
    kind = request.GET.get("kind") or IncidentType.OTHER
    current = runbooks.runbook_list().filter(kind=kind, use_case=use_case).first()
    initial = {"kind": kind, "title": current.title if current else "", "body": current.body if current else ""}
    form = RunbookForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                runbook = runbooks.runbook_save(actor=request.user, use_case=use_case, **form.cleaned_data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, "Runbook saved.")
                return redirect(runbook)
        status = 400
    return render(request, "incidents/runbook_edit.html", {"form": form, "use_case": use_case}, status=status)


# -- EU AI Act Art. 73 --------------------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def art73(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    status_ = regulatory.art73_status(incident)
    a = status_.assessment
    initial = {name: getattr(a, name) for name in regulatory.ASSESSMENT_FIELDS} if a else \
        {"eu_users": status_.suggested_eu_users}
    if a:
        initial["member_states"] = ", ".join(a.member_states)
    form = AssessmentForm(request.POST or None, initial=initial)
    code = 200
    if request.method == "POST":
        if not rules.may_update(request.user, incident):
            raise PermissionDenied("Only engineers of the incident's teams and council members assess it.")
        if form.is_valid():
            try:
                regulatory.assessment_save(incident=incident, actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, "Assessment saved.")
                return redirect(reverse("incidents:art73", args=[incident.pk]))
        code = 400
    return render(request, "incidents/art73.html", {
        "incident": incident, "art73": status_, "form": form,
        "may_update": rules.may_update(request.user, incident)}, status=code)


@login_required
@require_GET
def art73_report(request, pk: int, fmt: str):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    report = regulatory.art73_report(incident)
    name = f"{incident.reference}-art73"
    if fmt == "json":
        response = HttpResponse(regulatory.report_json(report), content_type="application/json")
    elif fmt == "md":
        response = HttpResponse(regulatory.report_markdown(report), content_type="text/markdown; charset=utf-8")
    else:
        return render(request, "incidents/art73_report.html", {"incident": incident, "report": report})
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


# -- metrics -------------------------------------------------------------------------------------------------
def _charts(m: metrics.IncidentMetrics) -> dict:
    months = list(m.by_month)
    if not months:
        return {}
    sev = {Severity(level).label: [m.severity_by_month[month].get(level, 0) for month in months]
           for level in Severity.values}
    return {
        "mttr": to_html(category_lines(series={
            "Median time to mitigate": [(mo, m.by_month[mo].ttm_median, f"{len(m.by_month[mo].ttm)} mitigated")
                                        for mo in months],
            "Median time to resolve (MTTR)": [(mo, m.by_month[mo].ttr_median,
                                               f"{len(m.by_month[mo].ttr)} resolved") for mo in months]},
            y_title="minutes", x_title="month detected")),
        "counts": to_html(stacked_bars(x=months, series=sev, y_title="incidents", categorical_x=True)),
        "escapes": to_html(category_lines(series={
            "Regression escapes": [(mo, m.escapes_by_month.get(mo, 0), "") for mo in months],
            "Production promotions": [(mo, m.promotions_by_month.get(mo, 0), "") for mo in months]},
            y_title="count", x_title="month")),
    }


@login_required
@require_GET
def metrics_page(request):
    form = MetricsFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}

    def start(day):
        return timezone.make_aware(datetime.combine(day, time.min)) if day else None

    figures = metrics.metrics_for(actor=request.user, since=start(data.get("since")),
                                  until=start(data.get("until")), team=data.get("team") or "",
                                  use_case_id=data.get("use_case"))
    return render(request, "incidents/metrics.html", {
        "form": form, "m": figures, "charts": _charts(figures), "targets": metrics.TARGET_MINUTES,
        "severities": [(level, figures.by_severity.get(level)) for level in Severity.values],
        "teams": teams_for(request.user, Action.VIEW).order_by("name")})


# -- detection suggestions ---------------------------------------------------------------------------------------
@login_required
@require_GET
def suggestion_list(request):
    return render(request, "incidents/suggestions.html", {
        "suggestions": detection.suggestion_list(actor=request.user)[:200],
        "recent": detection.suggestion_list(actor=request.user, status="")
        .exclude(status="pending")[:20]})


@login_required
@require_POST
def suggestion_open(request, pk: int):
    suggestion = detection.suggestion_get(actor=request.user, pk=pk)
    try:
        incident = detection.suggestion_open(suggestion=suggestion, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("incidents:suggestions")
    messages.success(request, f"{incident.reference} opened from the suggestion.")
    return redirect(incident)


@login_required
@require_POST
def suggestion_dismiss(request, pk: int):
    suggestion = detection.suggestion_get(actor=request.user, pk=pk)
    try:
        detection.suggestion_dismiss(suggestion=suggestion, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("incidents:suggestions")
