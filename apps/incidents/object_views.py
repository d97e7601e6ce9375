"""Switches from the pages of the objects they act on (a use case, a prompt, a gateway key, a RAG collection): the
box those pages show (registered through their apps' panel registries: apps/incidents/hooks.py) loads
`/incidents/switches/<scope>/<id>/`, which lists what acts on the object now (with Undo) and applies a switch on an
open incident or on one declared in the same form. Thin: parse → objects/selectors → mitigations → render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from apps.core.forms import apply_service_errors
from apps.core.htmx import is_fragment_request, render_page_or_fragment
from apps.incidents import mitigations, objects, rules, selectors
from apps.incidents.forms import NEW, ObjectMitigationForm, switch_params

TEMPLATE = "incidents/object_switches.html"


def _choices(request, obj):
    return selectors.incidents_to_switch(actor=request.user, team=obj.team), rules.may_declare(request.user, obj.team)


def _render(request, obj, *, form=None, status: int = 200):
    incidents, may_declare = _choices(request, obj)
    active = selectors.mitigations_on(actor=request.user, acting=objects.acting_on(obj))
    for mitigation in active:
        mitigation.may_undo = rules.may_switch(request.user, mitigation.incident)
    form = form or ObjectMitigationForm(incidents=incidents, kinds=obj.kinds, may_declare=may_declare)
    context = {"obj": obj, "mitigations": active, "form": form, "may_apply": bool(incidents) or may_declare,
               "fragment": is_fragment_request(request)}
    return render_page_or_fragment(request, TEMPLATE, context, "box", status=status)


def _done(request, obj):
    return _render(request, obj) if is_fragment_request(request) else redirect(obj.url)


@login_required
@require_GET
def object_switches(request, scope: str, pk: int):
    return _render(request, objects.switchable_get(actor=request.user, scope=scope, pk=pk))


@login_required
@require_POST
def object_switch_apply(request, scope: str, pk: int):
    obj = objects.switchable_get(actor=request.user, scope=scope, pk=pk)
    incidents, may_declare = _choices(request, obj)
    if not incidents and not may_declare:
        raise PermissionDenied("Engineers and owners of the team, an incident's commander and responders, and "
                               "council members apply switches.")
    form = ObjectMitigationForm(request.POST, incidents=incidents, kinds=obj.kinds, may_declare=may_declare)
    if form.is_valid():
        data = form.cleaned_data
        incident = None if data["incident"] == NEW else next(i for i in incidents if str(i.pk) == data["incident"])
        try:
            mitigation = mitigations.mitigate_object(
                obj=obj, actor=request.user, kind=data["kind"], incident=incident, declare=form.declared(),
                params=switch_params(data["kind"], data), reason=data["reason"],
                expires_in_minutes=data["expires_in_minutes"])
        except ValidationError as exc:
            apply_service_errors(form, exc, field_map={"target": "kind", "version": "to_version",
                                                        "expires_at": "expires_in_minutes"})
        else:
            messages.success(request, f"{mitigation} applied ({mitigation.incident.reference}).")
            return _done(request, obj)
    return _render(request, obj, form=form, status=400)


@login_required
@require_POST
def object_switch_undo(request, scope: str, pk: int, mitigation_pk: int):
    obj = objects.switchable_get(actor=request.user, scope=scope, pk=pk)
    mitigation = next((m for m in selectors.mitigations_on(actor=request.user, acting=objects.acting_on(obj))
                       if m.pk == mitigation_pk), None)
    if mitigation is None:
        raise Http404("No active switch on this object matches the given query.")
    try:
        undone = mitigations.mitigation_undo(mitigation=mitigation, actor=request.user)
    except ValidationError as exc:  # e.g. a prompt rollback's label cannot move back now: nothing changed
        messages.error(request, f"{mitigation} is still on: " + " ".join(exc.messages))
    else:
        messages.success(request, f"{mitigation} undone." + (f" {undone.undo_note}" if getattr(undone, "undo_note", "") else ""))
    return _done(request, obj)
