"""Models & prices: the catalog for everyone, its edits for admins. Thin: parse -> service/selector -> render."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import is_admin
from apps.core.forms import apply_service_errors, service_errors_on
from apps.core.htmx import htmx_location, is_fragment_request, render_page_or_fragment
from apps.costs.services import price_set
from apps.llm import aliases as alias_services
from apps.llm import services
from apps.llm.forms import (
    AliasEditForm,
    AliasForm,
    CatalogModelForm,
    DeploymentForm,
    ModelEditForm,
    PriceForm,
    ProviderEditForm,
    ProviderForm,
    provider_initial,
)
from apps.llm.health import deployment_health
from apps.llm.models import Deployment, Model, ModelAlias, Provider
from apps.llm.selectors import alias_list, model_prices, models_in_usage, price_history
from apps.llm.selectors import catalog as catalog_rows

ALIASES_REFRESH_SECONDS = 10  # how often the aliases page polls the live health
MODEL_FIELDS = ("remote_name", "display_name", "context_window", "max_output_tokens", "embedding_dimensions",
                "price_name", "is_active")


def admin_required(view):
    """Logged in (else the login page), and an admin (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied("Only portal admins may change providers, models and prices.")
        return view(request, *args, **kwargs)

    return wrapped


def _done(request, message: str):
    """After a successful POST: flash, then go back to the catalog (HX-Location for htmx, else 302)."""
    messages.success(request, message)
    url = reverse("llm:catalog")
    return htmx_location(url) if is_fragment_request(request) else redirect(url)


def _form_page(request, form, save, template: str, context: dict, done=None):
    """A catalog form page: on a valid POST, `save(cleaned_data)` (a service call) returns the message and
    the page goes back (`done`, the catalog by default); a refusal shows on the form (400), like invalid input."""
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            return (done or _done)(request, save(form.cleaned_data))
    return render(request, template, {"form": form, **context}, status=400 if form.is_bound else 200)


@login_required
def catalog(request):
    return render(request, "llm/catalog.html", {"catalog": catalog_rows(), "may_edit": is_admin(request.user),
                                                "usage_models": models_in_usage(actor=request.user)})


@admin_required
@require_http_methods(["GET", "POST"])
def provider_create(request):
    def save(data):
        return f"Provider {services.provider_create(user=request.user, **data).name} added."

    form = ProviderForm(request.POST or None, initial={"kind": "openai"})
    return _form_page(request, form, save, "llm/provider_form.html", {"provider": None})


@admin_required
@require_http_methods(["GET", "POST"])
def provider_edit(request, pk: int):
    provider = get_object_or_404(Provider, pk=pk)
    def save(data):
        services.provider_update(provider=provider, user=request.user, **data)
        return f"Provider {provider.name} saved."

    form = ProviderEditForm(request.POST or None, provider=provider, initial=provider_initial(provider))
    return _form_page(request, form, save, "llm/provider_form.html", {"provider": provider})


@admin_required
@require_POST
def provider_test(request, pk: int):
    provider = get_object_or_404(Provider, pk=pk)
    result = services.provider_test_connection(provider)
    if is_fragment_request(request):
        return render(request, "llm/partials/_connection_result.html", {"provider": provider, "result": result})
    (messages.success if result.ok else messages.error)(request, f"{provider.name}: {result.message}")
    return redirect("llm:catalog")


@admin_required
@require_http_methods(["GET", "POST"])
def model_create(request):
    initial = {"provider": request.GET.get("provider")} if request.GET.get("provider") else None
    form = CatalogModelForm(request.POST or None, initial=initial)
    return _form_page(request, form, lambda data: f"Model {services.model_create(user=request.user, **data).name} added.",
                      "llm/model_form.html", {"model": None})


@admin_required
@require_http_methods(["GET", "POST"])
def model_edit(request, pk: int):
    model = get_object_or_404(Model.objects.select_related("provider"), pk=pk)
    def save(data):
        services.model_update(model=model, user=request.user, **data)
        return f"Model {model.name} saved."

    form = ModelEditForm(request.POST or None, initial={f: getattr(model, f) for f in MODEL_FIELDS})
    return _form_page(request, form, save, "llm/model_form.html",
                      {"model": model, "prices": lambda: model_prices(model=model)})  # read after the save


@admin_required
@require_http_methods(["GET", "POST"])
def price_create(request):
    form = PriceForm(request.POST or None, initial={"model_name": request.GET.get("model", ""),
                                                    "provider": request.GET.get("provider", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        valid_from = data.pop("valid_from") or None  # aware, in the current time zone (USE_TZ)
        try:
            price = price_set(user=request.user, valid_from=valid_from, source="admin", **data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        except DatabaseError:  # the overlap trigger, if a concurrent edit slipped past price_set's check
            form.add_error("valid_from", "This period overlaps another price of the model; reload and try again.")
        else:
            starts = timezone.localtime(price.valid_from)
            return _done(request, f"Price of {price.model_name} set from {starts:%Y-%m-%d %H:%M %Z}.")
    name = (form.data.get("model_name") if form.is_bound else form.initial.get("model_name")) or ""
    history = price_history(model_name=name) if name else []
    status = 400 if form.is_bound else 200
    return render(request, "llm/price_form.html", {"form": form, "history": history, "model_name": name},
                  status=status)


# -- aliases and deployments (routing, docs/models.md) ----------------------------------------------------------
def _aliases_done(request, message: str):
    messages.success(request, message)
    url = reverse("llm:aliases")
    return htmx_location(url) if is_fragment_request(request) else redirect(url)


@login_required
@require_GET
def aliases(request):
    """Every alias, its deployments and each deployment's live health (breaker state, error rate, p50/p95 over the
    last LLM_HEALTH_WINDOW_MINUTES, read from Redis on each load); htmx polls the aliases region."""
    rows = list(alias_list())
    health = deployment_health([d.pk for alias in rows for d in alias.deployments.all()])
    table = [{"alias": alias, "deployments": [{"deployment": d, "health": health.get(d.pk)}
                                              for d in alias.deployments.all()]} for alias in rows]
    return render_page_or_fragment(request, "llm/aliases.html", {
        "rows": table, "may_edit": is_admin(request.user), "window": settings.LLM_HEALTH_WINDOW_MINUTES,
        "refresh_seconds": ALIASES_REFRESH_SECONDS}, fragment="aliases")


def _alias_form(request, form, save, title: str):
    """An alias or deployment form: like the catalog's, but back to the aliases page."""
    return _form_page(request, form, save, "llm/alias_form.html", {"title": title}, done=_aliases_done)


@admin_required
@require_http_methods(["GET", "POST"])
def alias_create(request):
    def save(data) -> str:
        alias = alias_services.alias_create(actor=request.user, **data)
        return f"Alias {alias.name} added: give it a deployment."

    return _alias_form(request, AliasForm(request.POST or None), save, "Add a model alias")


@admin_required
@require_http_methods(["GET", "POST"])
def alias_edit(request, pk: int):
    alias = get_object_or_404(ModelAlias, pk=pk)
    form = AliasEditForm(request.POST or None, initial={f: getattr(alias, f) for f in alias_services.ALIAS_FIELDS})

    def save(data) -> str:
        alias_services.alias_update(alias=alias, actor=request.user, **data)
        return f"Alias {alias.name} saved."

    return _alias_form(request, form, save, f"Alias {alias.name}")


@admin_required
@require_http_methods(["GET", "POST"])
def deployment_create(request, pk: int):
    alias = get_object_or_404(ModelAlias, pk=pk)

    def save(data) -> str:
        alias_services.deployment_create(alias=alias, actor=request.user, **data)
        return f"{data['model'].name} now serves {alias.name}."

    return _alias_form(request, DeploymentForm(request.POST or None, kind=alias.kind), save,
                       f"Add a deployment to {alias.name}")


@admin_required
@require_http_methods(["GET", "POST"])
def deployment_edit(request, pk: int):
    deployment = get_object_or_404(Deployment.objects.select_related("alias", "model"), pk=pk)
    form = DeploymentForm(request.POST or None, editing=True,
                          initial={f: getattr(deployment, f) for f in alias_services.DEPLOYMENT_FIELDS})

    def save(data) -> str:
        alias_services.deployment_update(deployment=deployment, actor=request.user, **data)
        return f"Deployment {deployment} saved."

    return _alias_form(request, form, save, f"Deployment {deployment}")
