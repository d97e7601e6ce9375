"""Pages of the prompt catalog. Thin: parse, call a selector or a service, render a page or a fragment."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import Team
from apps.accounts.permissions import Action, can, get_object_for, is_admin, teams_for, teams_or_deny
from apps.core.forms import apply_service_errors, service_errors_on
from apps.core.htmx import htmx_location, is_fragment_request, render_page_or_fragment
from apps.prompts import registry, selectors, services, webhooks
from apps.prompts.diff import version_diff
from apps.prompts.forms import (
    PAGE_SIZES,
    CatalogFilterForm,
    DecisionForm,
    ExpediteForm,
    ImportForm,
    LabelAtForm,
    LabelSetForm,
    MessageFormSet,
    PolicyForm,
    PromoteForm,
    PromptCreateForm,
    PromptEditForm,
    VersionForm,
    WebhookForm,
    message_initial,
)
from apps.prompts.lint import counts, lint_version
from apps.prompts.models import LATEST, PRODUCTION, PromotionStatus, PromptKind
from apps.prompts.playground import chat_models
from apps.prompts.rendering import coerce_variables, include_graph, render_version
from apps.prompts.templating import RenderFailed
from apps.prompts.yaml_io import ImportFailed, export_team, import_team


def _prompt_url(prompt, suffix: str = "") -> str:
    return reverse("prompts:detail", kwargs={"name": prompt.name}) + suffix


# --- catalog ---------------------------------------------------------------------------------------------

@login_required
@require_GET
def prompt_list(request):
    user = request.user
    extra = [SimpleNamespace(key=f.key, label=f.label, choices_list=f.choices(user=user), apply=f.apply)
             for f in registry.prompt_filters()]
    # A fragment (typing in the search box) shows no form: skip the choices it would need (~15 ms at 10k).
    fragment = is_fragment_request(request)
    tags, labels = ((), ()) if fragment else _filter_choices(user)
    form = CatalogFilterForm(request.GET or None, teams=teams_for(user, Action.VIEW).order_by("name"),
                             tags=tags, labels=labels, extra_filters=extra)
    data = form.cleaned()
    filters = selectors.CatalogFilters(
        q=data.get("q", ""), team=data.get("team", ""), tag=data.get("tag", ""), label=data.get("label", ""),
        kind=data.get("kind", ""), sort=data.get("sort", ""),
        extra={key: data.get(f"x_{key}") for key in form.extra_keys},
    )
    per_page = data.get("per_page") or PAGE_SIZES[0]
    page = Paginator(selectors.prompt_list(actor=user, filters=filters), per_page).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render_page_or_fragment(request, "prompts/list.html", {
        "form": form, "page": page, "query": query.urlencode(), "filters": filters,
        "may_create": teams_for(user, Action.CHANGE).exists(),
        "open_requests": selectors.promotion_request_list(actor=user, status=PromotionStatus.OPEN).count(),
    }, fragment="results")


def _filter_choices(user) -> tuple[list[str], list[str]]:
    """Tag and label choices of the filter form: two DISTINCT scans over the visible catalog, kept a minute."""
    key = f"prompts:filter-choices:{user.pk}"
    try:
        cached = cache.get(key)
    except Exception:  # noqa: BLE001 - the cache is an optimisation
        cached = None
    if cached is None:
        cached = (selectors.tag_choices(actor=user), selectors.label_choices(actor=user))
        with contextlib.suppress(Exception):
            cache.set(key, cached, timeout=60)
    return cached


@login_required
@require_http_methods(["GET", "POST"])
def prompt_create(request):
    teams = teams_or_deny(request.user, Action.CHANGE,
                          "You are not an engineer or owner of any team, so you cannot create prompts.")
    kind = request.POST.get("kind") or request.GET.get("kind") or PromptKind.TEXT
    form = PromptCreateForm(request.POST or None, teams=teams, initial={"kind": kind})
    version_form = VersionForm(request.POST or None, prefix="v")
    formset = _messages_formset(request, kind, None)
    if request.method == "POST" and form.is_valid() & version_form.is_valid() & formset.is_valid():
        data = form.cleaned_data
        try:
            prompt = services.prompt_create(
                team=data["team"], name=data["name"], kind=data["kind"], description=data["description"],
                tags=data["tags"], actor=request.user, commit_message=version_form.cleaned_data["commit_message"],
                draft=version_form.draft(data["kind"], formset.messages()),
            )
        except ValidationError as exc:
            for key in ("name", "kind", "tags"):
                for message in exc.message_dict.get(key, []):
                    form.add_error(key, message)
            version_form.add_service_errors(
                ValidationError({k: v for k, v in exc.message_dict.items() if k not in ("name", "kind", "tags")}),
                formset)
        else:
            messages.success(request, f"Created {prompt.name} with version 1.")
            first = prompt.versions.first()
            _warn_model(request, first.config if first else None)
            return redirect(_prompt_url(prompt))
    return render(request, "prompts/create.html", {"form": form, "version_form": version_form, "formset": formset,
                                                   "kind": kind, "catalog_models": _catalog_models()},
                  status=400 if request.method == "POST" else 200)


class _NoMessages:
    """Stands in for the message rows of a text prompt."""

    def __init__(self):
        self.errors_text: list[str] = []

    def is_valid(self) -> bool:
        return True

    def messages(self) -> list[dict]:
        return []


def _messages_formset(request, kind: str, base):
    """The message rows of a chat prompt (bound on POST, prefilled from `base` on GET)."""
    if kind != PromptKind.CHAT:
        return _NoMessages()
    if request.method == "POST":
        return MessageFormSet(request.POST, prefix="m")
    return MessageFormSet(prefix="m", initial=message_initial(base))


def _warn_model(request, config) -> None:
    for warning in selectors.model_config_warnings(config):
        messages.warning(request, warning)


def _catalog_models() -> list[str]:
    return chat_models()


# --- one prompt ------------------------------------------------------------------------------------------

@login_required
@require_GET
def prompt_detail(request, name: str):
    prompt = selectors.prompt_get(actor=request.user, name=name)
    labels = list(selectors.label_list(prompt=prompt))
    label_at = None
    at_form = LabelAtForm(request.GET if "at" in request.GET else None, initial={"label": PRODUCTION})
    if at_form.is_bound and at_form.is_valid():
        found = selectors.label_version_at(prompt=prompt, label=at_form.cleaned_data["label"],
                                           at=at_form.cleaned_data["at"])
        label_at = {"label": at_form.cleaned_data["label"], "at": at_form.cleaned_data["at"], "version": found}
    panels = []
    for panel in registry.prompt_panels():
        try:
            content = panel.fn(prompt=prompt, user=request.user)
        except Exception:  # noqa: BLE001 - another app's panel must not break this page
            content = {"title": panel.key, "html": "", "error": "This panel failed to load."}
        if content:
            panels.append(content)
    may_change = can(request.user, Action.CHANGE, prompt)
    versions = list(selectors.version_list(prompt=prompt)[:100])
    production = next((lb.version for lb in labels if lb.name == PRODUCTION), None)
    return render(request, "prompts/detail.html", {
        "shown_version": production or (versions[0] if versions else None), "shown_is_production": bool(production),
        "open_request": selectors.open_promotion_request(prompt) if may_change else None,
        "prompt": prompt,
        "labels": [{"label": lb, "protected": services.is_protected(prompt, lb.name)} for lb in labels],
        "production_number": next((lb.version.number for lb in labels if lb.name == PRODUCTION), None),
        "versions": versions,
        "labels_by_version": selectors.labels_by_version(prompt),
        "history": list(selectors.label_history(prompt=prompt).exclude(label=LATEST)[:50]),
        "requests": list(selectors.promotion_request_list(actor=request.user, prompt=prompt)[:10]),
        "uses": selectors.prompt_uses(prompt=prompt),
        "used_by": selectors.prompt_used_by(prompt=prompt, actor=request.user),
        "panels": panels,
        "may_change": may_change,
        "label_form": LabelSetForm(initial={"version": prompt.latest_version_number}),
        "at_form": at_form, "label_at": label_at,
    })


@login_required
@require_http_methods(["GET", "POST"])
def prompt_edit(request, name: str):
    prompt = selectors.prompt_get(actor=request.user, name=name, action=Action.CHANGE)
    form = PromptEditForm(request.POST or None, initial={"description": prompt.description,
                                                         "tags": ", ".join(prompt.tags)})
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            services.prompt_update(prompt=prompt, actor=request.user, **form.cleaned_data)
            messages.success(request, "Saved.")
            return redirect(_prompt_url(prompt))
    return render(request, "prompts/edit.html", {"prompt": prompt, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def version_create(request, name: str):
    prompt = selectors.prompt_get(actor=request.user, name=name, action=Action.CHANGE)
    base_number = request.GET.get("from")
    base = (selectors.version_get(prompt=prompt, number=int(base_number)) if base_number and base_number.isdigit()
            else selectors.version_list(prompt=prompt).first())
    form = VersionForm(request.POST or None, prefix="v", initial=VersionForm.initial_from(base))
    formset = _messages_formset(request, prompt.kind, base)
    if request.method == "POST" and form.is_valid() & formset.is_valid():
        try:
            result = services.version_create(prompt=prompt, draft=form.draft(prompt.kind, formset.messages()),
                                             commit_message=form.cleaned_data["commit_message"], actor=request.user)
        except ValidationError as exc:
            form.add_service_errors(exc, formset)
        else:
            (messages.success if result.created else messages.info)(request, result.message)
            _warn_model(request, result.version.config)
            return redirect(_prompt_url(prompt, f"-/versions/{result.version.number}/"))
    return render(request, "prompts/version_form.html", {"prompt": prompt, "form": form, "formset": formset,
                                                         "base": base, "catalog_models": _catalog_models()},
                  status=400 if request.method == "POST" else 200)


@login_required
@require_GET
def version_detail(request, name: str, number: int):
    prompt, version, graph, names = _version_with_includes(request, name, number)
    findings = lint_version(version, extra_used=graph.variables)
    errors, warnings = counts(findings)
    previous = selectors.version_list(prompt=prompt).filter(number__lt=number).first()
    may_change = can(request.user, Action.CHANGE, prompt)
    return render(request, "prompts/version.html", {
        "prompt": prompt, "version": version, "graph": graph, "findings": findings,
        "lint_errors": errors, "lint_warnings": warnings, "previous": previous,
        "labels": selectors.labels_by_version(prompt).get(number, []),
        "variables": names,
        "may_change": may_change,
        "open_request": selectors.open_promotion_request(prompt) if may_change else None,
        "model_warnings": selectors.model_config_warnings(version.config),
        "fields": _render_fields(names),
    })


def _version_with_includes(request, name: str, number: int):
    """(prompt, version, its include graph, every variable it needs, includes' too), or a 404."""
    prompt = selectors.prompt_get(actor=request.user, name=name)
    version = selectors.version_get(prompt=prompt, number=number)
    graph = include_graph(version)
    return prompt, version, graph, sorted(set(version.variables) | graph.variables)


def _render_fields(names, values: dict | None = None, problems=()) -> list[dict]:
    """The preview's variable fields with their values and the problems that name them."""
    values = values or {}
    fields = []
    for name in names:
        errors = [p.message for p in problems if p.variable == name]
        missing = any(p.kind == "missing_variable" and p.variable == name for p in problems)
        if missing and name in values and not values[name].strip():
            errors = [f"{name} is empty: give a value (variables are strict: a blank is never rendered)."]
        fields.append({"name": name, "value": values.get(name, ""), "errors": errors})
    return fields


@login_required
@require_POST
def version_render(request, name: str, number: int):
    """The preview on a version page: fill the variables, see the text or each problem next to its field."""
    prompt, version, _graph, names = _version_with_includes(request, name, number)
    posted = {v: request.POST.get(f"var_{v}", "") for v in names if f"var_{v}" in request.POST}
    # An empty field is a value not given: strict variables make it an error, as a missing one is.
    variables = {k: v for k, v in posted.items() if v.strip()}
    context = {"prompt": prompt, "version": version}
    problems = []
    try:
        context["rendered"] = render_version(version, coerce_variables(variables, version.variables_schema))
    except RenderFailed as exc:
        problems = exc.problems
    context["fields"] = _render_fields(names, posted, problems)
    context["problems"] = [p for p in problems if p.variable not in names]
    context["field_problems"] = len(problems) - len(context["problems"])
    if is_fragment_request(request):
        return render(request, "prompts/partials/_render_form.html", context)
    return render(request, "prompts/render_page.html", context, status=422 if problems else 200)


@login_required
@require_GET
def diff_view(request, name: str):
    prompt = selectors.prompt_get(actor=request.user, name=name)
    latest = prompt.latest_version_number
    try:
        b = int(request.GET.get("b") or latest)
        a = int(request.GET.get("a") or max(b - 1, 1))
    except ValueError:
        raise Http404("Give version numbers to compare, e.g. ?a=1&b=2.")
    left = selectors.version_get(prompt=prompt, number=a)
    right = selectors.version_get(prompt=prompt, number=b)
    return render(request, "prompts/diff.html", {"prompt": prompt, "diff": version_diff(left, right),
                                                 "numbers": list(range(latest, 0, -1)), "a": a, "b": b})


@login_required
@require_POST
def label_set(request, name: str):
    prompt = selectors.prompt_get(actor=request.user, name=name, action=Action.CHANGE)
    form = LabelSetForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a label name and a version number.")
        return redirect(_prompt_url(prompt))
    data = form.cleaned_data
    try:
        version = selectors.version_get(prompt=prompt, number=data["version"])
        services.label_set(prompt=prompt, label=data["label"], version=version, actor=request.user,
                           reason=data["reason"])
    except Http404 as exc:
        messages.error(request, str(exc))
    except PermissionDenied as exc:
        messages.error(request, f"{exc} Use “Request promotion”.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{data['label']} now points at version {data['version']}.")
    return redirect(_prompt_url(prompt))


@login_required
@require_http_methods(["GET", "POST"])
def promote(request, name: str):
    """Open a promotion (or rollback) request: shows the diff from the version the label points at now."""
    prompt = selectors.prompt_get(actor=request.user, name=name, action=Action.CHANGE)
    label = request.POST.get("label") or request.GET.get("label") or PRODUCTION
    number = request.POST.get("version") or request.GET.get("version") or prompt.latest_version_number
    form = PromoteForm(request.POST or None, initial={"version": number, "label": label})
    try:
        version = selectors.version_get(prompt=prompt, number=int(number))
    except ValueError:
        raise Http404("Choose a version number.")
    current = prompt.labels.filter(name=label).select_related("version").first()
    current_version = current.version if current else None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.promotion_request_open(prompt=prompt, version=version, actor=request.user,
                                                      reason=form.cleaned_data["reason"], label=label)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Opened request #{created.pk}. Ask a teammate to review it.")
            return redirect("prompts:request", pk=created.pk)
    return render(request, "prompts/promote.html", {
        "prompt": prompt, "version": version, "label": label, "current": current_version, "form": form,
        "open_request": selectors.open_promotion_request(prompt, label),
        "diff": version_diff(current_version, version),
        "numbers": list(range(prompt.latest_version_number, 0, -1)),
        "is_rollback": current_version is not None and version.number < current_version.number,
    }, status=400 if request.method == "POST" else 200)


# --- promotion requests ------------------------------------------------------------------------------------

@login_required
@require_GET
def request_list(request):
    status = request.GET.get("status", PromotionStatus.OPEN)
    if status not in PromotionStatus.values and status != "all":
        status = PromotionStatus.OPEN
    waiting_on_me = request.GET.get("waiting") == "me"
    if waiting_on_me:
        rows = selectors.promotion_requests_waiting_on(user=request.user)
    else:
        rows = selectors.promotion_request_list(actor=request.user, status="" if status == "all" else status)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(request, "prompts/requests.html", {"page": page, "status": status, "waiting_on_me": waiting_on_me,
                                                     "statuses": [*PromotionStatus.choices, ("all", "All")]})


def _request_context(request, promotion, **extra) -> dict:
    user = request.user
    may_approve, why_not = services.may_approve(user, promotion)
    current = promotion.prompt.labels.filter(name=promotion.label).select_related("version").first()
    current_version = current.version if current else None
    results = selectors.latest_check_results(promotion)
    return {
        "req": promotion, "prompt": promotion.prompt, "results": results,
        "blocked": [r for r in results if r.blocks],
        "approvals": list(promotion.approvals.select_related("user")),
        "diff": version_diff(promotion.from_version if not promotion.is_open else current_version,
                             promotion.to_version),
        "current": current_version,
        "may_approve": promotion.is_open and may_approve, "why_not": why_not,
        "may_recheck": promotion.is_open and can(user, Action.CHANGE, promotion.prompt),
        "may_cancel": promotion.is_open and services.may_cancel(user, promotion),
        "may_expedite": promotion.is_open and is_admin(user),
        "decision_form": DecisionForm(), "expedite_form": ExpediteForm(),
        "runs": promotion.check_results.values("run").distinct().count(),
        **extra,
    }


@login_required
@require_GET
def request_detail(request, pk: int):
    promotion = selectors.promotion_request_get(actor=request.user, pk=pk)
    return render(request, "prompts/request.html", _request_context(request, promotion))


def _decide(request, pk: int, action):
    promotion = selectors.promotion_request_get(actor=request.user, pk=pk)
    try:
        message = action(promotion)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, message)
    url = reverse("prompts:request", kwargs={"pk": pk})
    return htmx_location(url) if is_fragment_request(request) else redirect(url)


def _decide_posting(request, pk: int, service, *, done, who: str = "user", field: str = "comment"):
    """_decide for a service called with the promotion request, the person (as `who`) and one posted field.
    `done` is the success message, or a function of what the service returned."""
    value = request.POST.get(field, "")

    def act(promotion):
        outcome = service(request=promotion, **{who: request.user, field: value})
        return done(outcome) if callable(done) else done

    return _decide(request, pk, act)


def _waiting(outcome) -> str:
    if outcome.applied:
        return (f"{outcome.request.label} now points at version {outcome.request.to_version.number} of "
                f"{outcome.request.prompt.name}.")
    return "Recorded. Waiting on: " + ", ".join(outcome.waiting_on) + "."


@login_required
@require_POST
def request_approve(request, pk: int):
    return _decide_posting(request, pk, services.promotion_request_approve,
                           done=lambda outcome: "Approved. " + _waiting(outcome))


@login_required
@require_POST
def request_reject(request, pk: int):
    return _decide_posting(request, pk, services.promotion_request_reject,
                           done="Rejected. The requester sees your comment.")


@login_required
@require_http_methods(["GET", "POST"])
def request_cancel(request, pk: int):
    """GET: the confirm step (works without JavaScript); POST: cancel."""
    if request.method == "GET":
        promotion = selectors.promotion_request_get(actor=request.user, pk=pk)
        if not (promotion.is_open and services.may_cancel(request.user, promotion)):
            messages.error(request, "Only the requester or an owner of the team may cancel an open request.")
            return redirect("prompts:request", pk=pk)
        return render(request, "prompts/cancel.html", {"req": promotion, "prompt": promotion.prompt})
    return _decide_posting(request, pk, services.promotion_request_cancel, who="actor", done="Cancelled.")


@login_required
@require_POST
def request_recheck(request, pk: int):
    def recheck(p):
        if not can(request.user, Action.CHANGE, p.prompt):
            raise PermissionDenied("Only engineers of the owning team may re-run the checks.")
        return "Checks re-run. " + _waiting(services.promotion_request_recheck(request=p, user=request.user))

    return _decide(request, pk, recheck)


@login_required
@require_POST
def request_expedite(request, pk: int):
    return _decide_posting(request, pk, services.promotion_request_expedite, field="reason",
                           done=lambda outcome: "Expedited. " + _waiting(outcome))


# --- team settings: policy, webhooks, export / import ------------------------------------------------------

def _team(request, slug: str, action=Action.VIEW) -> Team:
    return get_object_for(request.user, Team.objects.all(), action, slug=slug)


def _settings_context(request, team, **extra) -> dict:
    policy = services.policy_for(team.pk)
    checks = registry.gate_checks()
    may_manage = can(request.user, Action.MANAGE, team)
    advisory = [c.key for c in checks if not policy.check_overrides.get(c.key, c.blocking_default)]
    context = {
        "team": team, "policy": policy, "checks": checks, "may_manage": may_manage,
        "may_change": can(request.user, Action.CHANGE, team),
        "policy_form": PolicyForm(checks=checks, initial={
            "approvals_required": policy.approvals_required, "not_configured_blocks": policy.not_configured_blocks,
            "lint_warnings_block": policy.lint_warnings_block,
            "protected_labels": ", ".join(policy.protected_labels), "advisory_checks": advisory}),
        "webhook_form": WebhookForm(), "import_form": ImportForm(),
        "webhooks": list(selectors.webhook_list(team=team)) if may_manage else [],
        "deliveries": selectors.delivery_list(team=team) if may_manage else [],
    }
    context.update(extra)
    return context


@login_required
@require_GET
def team_settings(request, slug: str):
    team = _team(request, slug)
    return render(request, "prompts/team_settings.html", _settings_context(request, team))


@login_required
@require_POST
def policy_update(request, slug: str):
    team = _team(request, slug, Action.MANAGE)
    checks = registry.gate_checks()
    form = PolicyForm(request.POST, checks=checks)
    if form.is_valid():
        data = form.cleaned_data
        overrides = {c.key: c.key not in data["advisory_checks"] for c in checks
                     if c.key != "approvals" and (c.key in data["advisory_checks"]) == c.blocking_default}
        try:
            services.policy_set(team=team, actor=request.user, approvals_required=data["approvals_required"],
                                not_configured_blocks=data["not_configured_blocks"],
                                lint_warnings_block=data["lint_warnings_block"], check_overrides=overrides,
                                protected_labels=[s.strip() for s in data["protected_labels"].split(",") if s.strip()])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Release policy saved.")
            return redirect("prompts:team_settings", slug=slug)
    return render(request, "prompts/team_settings.html", _settings_context(request, team, policy_form=form),
                  status=400)


@login_required
@require_POST
def webhook_create(request, slug: str):
    team = _team(request, slug, Action.MANAGE)
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook, secret = webhooks.webhook_create(team=team, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return render(request, "prompts/team_settings.html",
                          _settings_context(request, team, new_secret=secret, new_webhook=webhook))
    return render(request, "prompts/team_settings.html", _settings_context(request, team, webhook_form=form),
                  status=400)


@login_required
@require_POST
def webhook_delete(request, slug: str, pk: int):
    team = _team(request, slug, Action.MANAGE)
    webhook = selectors.webhook_list(team=team).filter(pk=pk).first()
    if webhook is None:
        raise Http404("No such webhook.")
    webhooks.webhook_delete(webhook=webhook, actor=request.user)
    messages.success(request, f"Webhook {webhook.url} deleted.")
    return redirect("prompts:team_settings", slug=slug)


@login_required
@require_GET
def team_export(request, slug: str):
    team = _team(request, slug)
    response = HttpResponse(export_team(team, actor=request.user), content_type="application/yaml")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="prompts-{team.slug}-{stamp}.yaml"'
    return response


@login_required
@require_POST
def team_import(request, slug: str):
    team = _team(request, slug, Action.CHANGE)
    form = ImportForm(request.POST, request.FILES)
    context = {}
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            form.add_error("file", "The file is not UTF-8 text.")
        else:
            try:
                report = import_team(team, text, actor=request.user, dry_run=form.cleaned_data["dry_run"])
            except ImportFailed as exc:
                context["import_errors"] = exc.errors
            else:
                context["import_report"] = report
                if not report.dry_run:
                    messages.success(request, f"Imported: {len(report.created_prompts)} new prompt(s), "
                                              f"{len(report.created_versions)} new version(s).")
    status = 400 if ("import_errors" in context or form.errors) else 200
    return render(request, "prompts/team_settings.html",
                  _settings_context(request, team, import_form=form, **context), status=status)
