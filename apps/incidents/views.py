"""The incident pages: list with filters, declare, the incident (timeline, status actions, mitigations: htmx
swaps its `live` fragment), and "what is switched now". Thin: parse → selector/service → render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, teams_for, teams_or_deny
from apps.core.forms import apply_service_errors
from apps.core.htmx import is_fragment_request, render_page_or_fragment
from apps.gateway import selectors as gateway_selectors
from apps.incidents import mitigations, rules, selectors, services
from apps.incidents.followup_views import followup_context
from apps.incidents.forms import DeclareForm, IncidentFilterForm, MitigationForm, MoveForm, NoteForm
from apps.incidents.models import Status


@login_required
@require_GET
def incident_list(request):
    form = IncidentFilterForm(request.GET or None)
    values = form.cleaned_data if form.is_valid() else {}
    filters = selectors.IncidentFilters(**{k: str(v or "") for k, v in values.items()})
    page = Paginator(selectors.incident_list(actor=request.user, filters=filters), 50) \
        .get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "filters": filters, "query": query.urlencode(),
               "teams": teams_for(request.user, Action.VIEW).order_by("name"),
               "may_declare": teams_for(request.user, Action.CHANGE).exists() or rules.is_council_member(request.user)}
    return render_page_or_fragment(request, "incidents/list.html", context, "results")


def _declare_teams(user):
    """The teams this person may declare for: their teams where they are engineers or owners; every team for
    council members (who see every team)."""
    return teams_or_deny(user, Action.VIEW if rules.is_council_member(user) else Action.CHANGE,
                         "Engineers and owners of a team, and council members, declare incidents.")


@login_required
@require_http_methods(["GET", "POST"])
def incident_declare(request):
    teams = _declare_teams(request.user)
    # A GET may prefill the form (a scorecard's "open an incident" link); nothing is declared until POST.
    initial = {k: v[:1000] for k, v in request.GET.items() if k in DeclareForm.base_fields} \
        if request.method == "GET" else None
    form = DeclareForm(request.POST or None, teams=teams, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = dict(form.cleaned_data)
            team = teams.get(slug=data.pop("team"))
            try:
                incident = services.incident_declare(actor=request.user, team=team, **data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"{incident.reference} declared.")
                return redirect(incident)
        status = 400
    return render(request, "incidents/declare.html",
                  {"form": form, "severities": selectors.severity_definitions()}, status=status)


def _detail_context(request, incident, *, mitigation_form=None, note_form=None) -> dict:
    team_ids = rules.team_ids_of(incident)
    may_update = rules.may_update(request.user, incident)
    may_switch = rules.may_switch(request.user, incident)
    keys = gateway_selectors.keys_for(request.user).filter(team_id__in=team_ids, revoked_at__isnull=True) \
        if may_switch else []
    return {"incident": incident, "timeline": selectors.timeline(incident),
            "mitigations": selectors.mitigations_of(incident), "may_update": may_update, "may_switch": may_switch,
            "moves": [(to, dict(Status.choices)[to], rules.is_reopen(incident.status, to))
                      for to in rules.allowed_moves(request.user, incident)],
            "mitigation_form": mitigation_form or MitigationForm(keys=keys),
            "note_form": note_form or NoteForm(), "teams": incident.teams.order_by("name"),
            "use_cases": incident.use_cases.order_by("title"), "responders": incident.responders.all(),
            "severity": next((d for d in selectors.severity_definitions() if d.level == incident.severity), None),
            **followup_context(request.user, incident)}


@login_required
@require_GET
def incident_detail(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    return render(request, "incidents/detail.html", _detail_context(request, incident))


def _after_change(request, incident, **forms):
    """htmx: the refreshed `live` fragment (400 when a form carries errors); a plain form post: back to the page."""
    incident = selectors.incident_get(actor=request.user, pk=incident.pk)
    failed = any(form is not None and form.errors for form in forms.values())
    if is_fragment_request(request):
        context = {**_detail_context(request, incident, **forms), "fragment": True}
        return render(request, "incidents/detail.html#live", context, status=400 if failed else 200)
    if failed:
        return render(request, "incidents/detail.html", _detail_context(request, incident, **forms), status=400)
    return redirect(incident)


@login_required
@require_POST
def incident_move(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    form = MoveForm(request.POST)
    if form.is_valid():
        try:
            services.incident_move(incident=incident, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, "Choose a status to move to.")
    return _after_change(request, incident)


@login_required
@require_POST
def incident_acknowledge(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    services.incident_acknowledge(incident=incident, actor=request.user)
    return _after_change(request, incident)


@login_required
@require_POST
def note_add(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.note_add(incident=incident, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            form = None
    return _after_change(request, incident, note_form=form)


@login_required
@require_POST
def mitigation_apply(request, pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    if not rules.may_switch(request.user, incident):
        raise PermissionDenied("Only the incident's responders, its commander, engineers of its teams and council "
                               "members apply mitigations.")
    keys = gateway_selectors.keys_for(request.user).filter(team_id__in=rules.team_ids_of(incident),
                                                          revoked_at__isnull=True)
    form = MitigationForm(request.POST, keys=keys)
    if form.is_valid():
        try:
            mitigation = mitigations.mitigation_apply(incident=incident, actor=request.user,
                                                      **form.service_arguments(incident))
        except ValidationError as exc:
            apply_service_errors(form, exc, field_map={"target": "scope", "version": "to_version"})
        else:
            messages.success(request, f"{mitigation} applied.")
            form = None
    return _after_change(request, incident, mitigation_form=form)


@login_required
@require_POST
def mitigation_undo(request, pk: int, mitigation_pk: int):
    incident = selectors.incident_get(actor=request.user, pk=pk)
    mitigation = selectors.mitigation_get(incident=incident, pk=mitigation_pk)
    try:
        undone = mitigations.mitigation_undo(mitigation=mitigation, actor=request.user)
    except ValidationError as exc:  # e.g. a prompt rollback's label cannot move back now: nothing changed
        messages.error(request, f"{mitigation} is still on: " + " ".join(exc.messages))
    else:
        messages.success(request, f"{mitigation} undone." + (f" {undone.undo_note}" if getattr(
            undone, "undo_note", "") else ""))
    return _after_change(request, incident)


@login_required
@require_GET
def switched_now(request):
    return render(request, "incidents/switched.html", {"mitigations": selectors.switched_now(actor=request.user)})
