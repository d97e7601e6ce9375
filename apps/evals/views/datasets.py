"""Dataset pages: list, create, items (add, edit, from a playground run or a stored gateway request), import,
export, the shared seed."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, is_admin, teams_for, teams_or_deny
from apps.core.forms import apply_service_errors
from apps.core.htmx import render_page_or_fragment
from apps.evals import datasets as dataset_services
from apps.evals import selectors
from apps.evals.forms import DatasetCreateForm, ImportForm, ItemForm, PlaygroundSaveForm
from apps.evals.models import DatasetRevision
from apps.evals.seed import ADVERSARIAL_NAME, adversarial_seed
from apps.evals.views import PAGE_SIZE
from apps.gateway.selectors import body_get
from apps.prompts.selectors import playground_run_for


def _saved(request, form, write, done, dataset=None):
    """Call a dataset write; on success flash `done(what the write returned)` and go to
    the dataset (`dataset`, or the one the write created); on a refusal put the errors on the form and return
    None, so the page shows the form again."""
    try:
        result = write()
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return None
    messages.success(request, done(result))
    return redirect("evals:dataset_detail", pk=(dataset or result).pk)


def _save_as_item(request, form, datasets, write):
    """The POST of a "save as a dataset item" form (PlaygroundSaveForm): `write(dataset=, expected=, tags=)`;
    the dataset's page on success, None to show the form again (not posted, invalid, or refused)."""
    if request.method != "POST" or not form.is_valid():
        return None
    dataset = next(d for d in datasets if str(d.pk) == form.cleaned_data["dataset"])
    tags = [t.strip() for t in form.cleaned_data["tags"].split(",") if t.strip()]
    return _saved(request, form, lambda: write(dataset=dataset, expected=form.cleaned_data["expected"] or None,
                                               tags=tags),
                  lambda revision: f"Saved to {dataset.name}: revision {revision.number}.", dataset)


def _revision_param(request, dataset) -> int:
    raw = request.GET.get("revision") or ""
    if raw.isdigit() and 1 <= int(raw) <= dataset.latest_revision:
        return int(raw)
    return dataset.latest_revision


@login_required
@require_GET
def dataset_list(request):
    latest = DatasetRevision.objects.filter(dataset=OuterRef("pk")).order_by("-number").values("item_count")[:1]
    datasets = selectors.dataset_list(actor=request.user).annotate(item_count=Subquery(latest))
    page = Paginator(datasets, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "evals/dataset_list.html", {
        "page": page, "may_create": teams_for(request.user, Action.CHANGE).exists(),
        "may_seed": is_admin(request.user) and not datasets.filter(name=ADVERSARIAL_NAME).exists(),
    })


@login_required
@require_http_methods(["GET", "POST"])
def dataset_create(request):
    teams = teams_or_deny(request.user, Action.CHANGE, "Only engineers and owners of a team may create datasets.")
    form = DatasetCreateForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        done = _saved(request, form, lambda: dataset_services.dataset_create(
            team=data["team"], name=data["name"], description=data["description"],
            input_names=data["input_names"], actor=request.user), lambda new: f"Created {new.name}. Add items or import a file.")
        if done:
            return done
    return render(request, "evals/dataset_create.html", {"form": form}, status=422 if form.errors else 200)


@login_required
@require_GET
def dataset_detail(request, pk: int):
    dataset = selectors.dataset_get(actor=request.user, pk=pk)
    revision = _revision_param(request, dataset)
    q, tag = request.GET.get("q", "").strip(), request.GET.get("tag", "").strip()
    items = selectors.dataset_items(dataset=dataset, revision=revision, q=q, tag=tag) if revision else []
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "dataset": dataset, "revision": revision, "page": page, "q": q, "tag": tag, "query": query.urlencode(),
        "tags": selectors.dataset_tags(dataset=dataset, revision=revision) if revision else [],
        "revisions": list(selectors.dataset_revisions(dataset=dataset)[:50]),
        "may_change": selectors.may_change_dataset(request.user, dataset),
        "import_form": ImportForm(), "runs": list(selectors.run_list(actor=request.user, dataset_id=dataset.pk)[:10]),
        "may_run": teams_for(request.user, Action.CHANGE).exists(),
    }
    return render_page_or_fragment(request, "evals/dataset_detail.html", context, fragment="items")


@login_required
@require_http_methods(["GET", "POST"])
def dataset_import(request, pk: int):
    dataset = selectors.dataset_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = ImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        fmt = dataset_services.guess_format(upload.name)
        if fmt is None:
            form.add_error("file", "Upload a .csv or .jsonl file.")
        else:
            try:
                report = dataset_services.dataset_import(
                    dataset=dataset, file=upload, fmt=fmt, mode=form.cleaned_data["mode"],
                    import_valid=form.cleaned_data["import_valid"], actor=request.user,
                    message=form.cleaned_data["message"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                if report.written:
                    skipped = f" {report.error_rows} bad row(s) skipped." if report.error_rows else ""
                    messages.success(request, f"Imported {report.valid_rows} item(s) as revision {report.revision}."
                                              f"{skipped}")
                    return redirect(reverse("evals:dataset_detail", args=[dataset.pk]) + f"?revision={report.revision}")
    status = 422 if (form.errors or (report and not report.written)) else 200
    return render(request, "evals/dataset_import.html", {"dataset": dataset, "form": form, "report": report},
                  status=status)


@login_required
@require_GET
def dataset_export(request, pk: int, fmt: str):
    dataset = selectors.dataset_get(actor=request.user, pk=pk)
    revision = _revision_param(request, dataset)
    if not revision:
        raise Http404("The dataset has no items yet.")
    slug = dataset.name.replace("/", "_")
    if fmt == "csv":
        response = StreamingHttpResponse(dataset_services.export_csv(dataset, revision), content_type="text/csv")
    elif fmt == "jsonl":
        response = StreamingHttpResponse(dataset_services.export_jsonl(dataset, revision),
                                         content_type="application/x-ndjson")
    else:
        raise Http404("Export as csv or jsonl.")
    response["Content-Disposition"] = f'attachment; filename="{slug}-r{revision}.{fmt}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def dataset_item_add(request, pk: int):
    dataset = selectors.dataset_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = ItemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        done = _saved(request, form, lambda: dataset_services.dataset_items_add(
            dataset=dataset, items=[form.item()], actor=request.user, message=form.cleaned_data["message"]),
            lambda revision: f"Added the item: revision {revision.number}.", dataset)
        if done:
            return done
    return render(request, "evals/item_form.html", {"dataset": dataset, "form": form, "editing": None},
                  status=422 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def dataset_item_edit(request, pk: int, key: str):
    dataset = selectors.dataset_get(actor=request.user, pk=pk, action=Action.CHANGE)
    item = selectors.dataset_items(dataset=dataset, revision=dataset.latest_revision).filter(key=key).first()
    if item is None:
        raise Http404("No such item in the latest revision.")
    initial = {"id": item.key, "inputs": item.inputs, "expected": item.expected or "",
               "contexts": "\n\n".join(item.contexts), "tags": ", ".join(item.tags)}
    form = ItemForm(request.POST or None, initial=initial)
    form.fields["id"].disabled = True
    if request.method == "POST":
        if "remove" in request.POST:
            revision = dataset_services.dataset_items_remove(dataset=dataset, keys=[key], actor=request.user)
            messages.success(request, f"Removed {key}: revision {revision.number}.")
            return redirect("evals:dataset_detail", pk=dataset.pk)
        if form.is_valid():
            changes = form.item()
            changes.pop("id")
            done = _saved(request, form, lambda: dataset_services.dataset_item_edit(
                dataset=dataset, key=key, changes=changes, actor=request.user,
                message=form.cleaned_data["message"]), lambda revision: f"Saved {key}: revision {revision.number}.",
                          dataset)
            if done:
                return done
    return render(request, "evals/item_form.html", {"dataset": dataset, "form": form, "editing": item},
                  status=422 if form.errors else 200)


@login_required
@require_POST
def seed_adversarial(request):
    if not is_admin(request.user):
        raise PermissionDenied("Only admins seed the portal's shared sets.")
    dataset = adversarial_seed(actor=request.user)
    messages.success(request, f"Seeded {dataset.name} and the shared safety evaluators.")
    return redirect("evals:dataset_detail", pk=dataset.pk)


@login_required
@require_http_methods(["GET", "POST"])
def from_playground(request, run_id: int):
    run = playground_run_for(actor=request.user, pk=run_id)
    if run is None:
        raise Http404("No such playground run.")
    datasets = [d for d in selectors.dataset_list(actor=request.user, action=Action.CHANGE)]
    if not datasets:
        raise PermissionDenied("You may not change any dataset: create one in Evals → Datasets first.")
    form = PlaygroundSaveForm(request.POST or None, datasets=datasets, initial={"expected": run.output})
    done = _save_as_item(request, form, datasets, lambda **item: dataset_services.dataset_item_from_playground(
        run=run, actor=request.user, **item))
    if done:
        return done
    return render(request, "evals/from_playground.html", {"run": run, "form": form,
                                                          "inputs": json.dumps(run.inputs, indent=1)},
                  status=422 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def from_gateway(request, request_id: str):
    """A stored (redacted) gateway request as an item of a dataset of the key's team."""
    body = body_get(request.user, request_id)
    if body is None:
        raise Http404("No stored body for this request among the keys you may see.")
    datasets = [d for d in selectors.dataset_list(actor=request.user, action=Action.CHANGE) if d.team_id == body.team_id]
    if not datasets:
        raise PermissionDenied(f"You may not change any dataset of {body.team.name}: create one in Evals → Datasets "
                               "first (engineers and owners of the team may).")
    form = PlaygroundSaveForm(request.POST or None, datasets=datasets,
                              initial={"expected": (body.response or {}).get("content") or ""})
    done = _save_as_item(request, form, datasets, lambda **item: dataset_services.dataset_item_from_gateway(
        body=body, actor=request.user, **item))
    if done:
        return done
    return render(request, "evals/from_gateway.html",
                  {"body": body, "form": form, "request_json": json.dumps(body.request, indent=1, ensure_ascii=False)},
                  status=422 if form.errors else 200)
