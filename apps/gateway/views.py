"""The gateway's pages: keys per team (create with the secret shown once, rotate, revoke, limits), request log
and one request's page (its metadata, and its redacted bodies when its key stores them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import Team
from apps.accounts.permissions import Action, can, get_object_for, teams_for
from apps.core.forms import apply_service_errors
from apps.core.htmx import render_page_or_fragment
from apps.costs import selectors as costs_selectors
from apps.gateway import registry, selectors, services
from apps.gateway.forms import GatewayKeyForm, GuardrailsForm, KeyEditForm, RequestLogFilterForm, RotateForm

GUARDRAIL_DAYS = 30  # the key page counts the safety events of this many days


def _team(request, slug: str | None) -> Team | None:
    teams = teams_for(request.user, Action.VIEW).order_by("name")
    if slug:
        return get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    return teams.first()


def _keys_page(request, team: Team | None, *, form=None, status: int = 200):
    keys = list(selectors.keys_for(request.user, team=team)) if team else []
    cache = costs_selectors.gateway_cache_summary(actor=request.user, gateway_key_ids=[k.pk for k in keys],
                                                  start=timezone.now() - timedelta(hours=24)) if keys else {}
    for key in keys:
        key.may_revoke = services.may_revoke(request.user, key)
        key.cache_day = cache["keys"].get(key.pk) if cache else None
    may_create = team is not None and can(request.user, Action.CHANGE, team)
    context = {"team": team, "teams": teams_for(request.user, Action.VIEW).order_by("name"), "keys": keys,
               "may_create": may_create, "may_manage": team is not None and can(request.user, Action.MANAGE, team),
               "form": form or (GatewayKeyForm() if may_create else None), "rotate_form": RotateForm()}
    return render(request, "gateway/keys.html", context, status=status)


@login_required
@require_GET
def keys(request):
    return _keys_page(request, _team(request, request.GET.get("team")))


@never_cache  # the answer holds the secret: no cache may keep it
@login_required
@require_POST
def key_create(request, slug: str):
    team = get_object_for(request.user, Team.objects.all(), Action.CHANGE, slug=slug)
    form = GatewayKeyForm(request.POST)
    if form.is_valid():
        try:
            issued = services.gateway_key_create(team=team, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return render(request, "gateway/key_created.html", {"team": team, "issued": issued})
    return _keys_page(request, team, form=form, status=400)


def _edit_initial(key) -> dict:
    return {"name": key.name, "allowed_aliases": ", ".join(key.allowed_aliases),
            **{f: getattr(key, f) for f in (*services.LIMIT_FIELDS, "dollars_per_day", "expires_at",
                                            *services.CACHE_FIELDS, "store_bodies", "body_sample_percent")}}


@login_required
@require_http_methods(["GET", "POST"])
def key_detail(request, pk: int):
    key = selectors.key_get(request.user, pk)
    may_manage = can(request.user, Action.MANAGE, key)
    initial = _edit_initial(key)
    form = KeyEditForm(initial=initial)
    status = 200
    if request.method == "POST":
        if not may_manage:
            raise PermissionDenied("Only owners of the team change a key's limits.")
        form = KeyEditForm(request.POST, initial=initial)
        if form.is_valid():
            try:
                services.gateway_key_update(key=key, actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"Key {key.prefix} updated: it applies from the next request.")
                return redirect("gateway:key_detail", pk=key.pk)
        status = 400
    return _key_detail_page(request, key, form=form, status=status)


def _key_detail_page(request, key, *, form=None, guard_form=None, status: int = 200):
    may_manage = can(request.user, Action.MANAGE, key)
    form = form or KeyEditForm(initial=_edit_initial(key))
    guard_form = guard_form or GuardrailsForm(initial={f: getattr(key, f) for f in services.GUARD_FIELDS})
    safety = costs_selectors.guardrail_action_counts(
        actor=request.user, gateway_key_ids=[key.pk], start=datetime.now(UTC) - timedelta(days=GUARDRAIL_DAYS))
    cache_day = costs_selectors.gateway_cache_summary(actor=request.user, gateway_key_ids=[key.pk],
                                                      start=timezone.now() - timedelta(hours=24))["keys"].get(key.pk)
    return render(request, "gateway/key_detail.html",
                  {"key": key, "form": form, "may_manage": may_manage, "rotate_form": RotateForm(),
                   "may_revoke": services.may_revoke(request.user, key), "guard_form": guard_form,
                   "safety": safety, "safety_days": GUARDRAIL_DAYS, "cache_day": cache_day,
                   "panels": registry.key_panels.panels(key=key, user=request.user)}, status=status)


@login_required
@require_POST
def key_guardrails(request, pk: int):
    """Change the key's guardrail policy: owners of the team and admins (403 for others)."""
    key = selectors.key_get(request.user, pk, Action.MANAGE)
    form = GuardrailsForm(request.POST)
    if form.is_valid():
        try:
            services.gateway_key_guardrails_set(key=key, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Guardrails of {key.prefix} saved: they apply from the next request.")
            return redirect("gateway:key_detail", pk=key.pk)
    return _key_detail_page(request, key, guard_form=form, status=400)


@never_cache
@login_required
@require_POST
def key_rotate(request, pk: int):
    key = selectors.key_get(request.user, pk, Action.MANAGE)
    form = RotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("gateway:key_detail", pk=key.pk)
    try:
        issued = services.gateway_key_rotate(key=key, overlap=timedelta(hours=form.cleaned_data["overlap_hours"]),
                                             actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("gateway:key_detail", pk=key.pk)
    return render(request, "gateway/key_created.html", {"team": key.team, "issued": issued, "rotated": key})


@login_required
@require_POST
def key_revoke(request, pk: int):
    key = selectors.key_get(request.user, pk)
    if key.revoked_at is not None:
        messages.info(request, f"Key {key.prefix} was already revoked.")
    else:
        services.gateway_key_revoke(key=key, actor=request.user)
        messages.success(request, f"Key {key.prefix} revoked: it stops working on the next request.")
    return redirect(f"{reverse('gateway:keys')}?team={key.team.slug}")


@login_required
@require_GET
def request_log(request):
    keys = list(selectors.keys_for(request.user).order_by("team__name", "name"))
    form = RequestLogFilterForm(request.GET or None, keys=keys)
    events, cache, status = [], None, 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data if form.is_bound else {}
        key_ids = [int(data["key"])] if data.get("key") else [k.pk for k in keys]
        day = data.get("day")
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
        chosen = {"gateway_key_ids": key_ids, "status": data.get("status") or None, "alias": data.get("alias") or None}
        events = costs_selectors.usage_event_log(actor=request.user, source="gateway", start=start,
                                                 end=start + timedelta(days=1) if start else None, **chosen)
        # The cache's hit rate over the day chosen, or the last 24 hours.
        cache = costs_selectors.gateway_cache_summary(
            actor=request.user, start=start or timezone.now() - timedelta(hours=24),
            end=start + timedelta(days=1) if start else None, **chosen)["total"]
    names = {k.pk: k for k in keys}
    stored = selectors.body_request_ids(request.user, [e.request_id for e in events]) if events else set()
    for event in events:
        event.key = names.get(event.gateway_key_id)
        event.body_stored = event.request_id in stored
    return render_page_or_fragment(request, "gateway/requests.html", {"form": form, "events": events, "cache": cache},
                                   fragment="results", status=status)


@login_required
@require_GET
def request_detail(request, request_id: str):
    """One request: its usage event and, when its key stores sampled bodies, the redacted request and response
    (reading is not audited: only changes are). 404 unless the actor may read the key's traffic."""
    keys = list(selectors.keys_for(request.user))
    events = costs_selectors.usage_event_log(actor=request.user, source="gateway",
                                             gateway_key_ids=[k.pk for k in keys], request_id=request_id, limit=1)
    event = events[0] if events else None
    body = selectors.body_get(request.user, request_id)
    if event is None and body is None:
        raise Http404("No request with this id among the keys you may see.")
    if event is not None:
        event.key = next((k for k in keys if k.pk == event.gateway_key_id), None)
    actions = []
    if body is not None:
        for action in registry.body_actions():
            url = action.url(body=body, user=request.user)
            if url:
                actions.append({"label": action.label, "url": url})
    return render(request, "gateway/request_detail.html", {
        "request_id": request_id, "event": event, "body": body, "actions": actions,
        "request_json": json.dumps(body.request, indent=1, ensure_ascii=False) if body else ""})
