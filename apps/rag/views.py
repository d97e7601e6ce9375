"""RAG pages: collections, documents with live indexing progress, the playground, answers, retrieval evals.

Thin: parse the request, check permissions through selectors (404 unseen, 403 refused), call a service or
a selector, render a page or its fragment.
"""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, can
from apps.core.htmx import htmx_location, is_fragment_request, render_page_or_fragment
from apps.llm.errors import LlmError
from apps.prompts.templating import RenderFailed
from apps.rag import evaluation, selectors, services
from apps.rag.answers import answer_question
from apps.rag.config import RetrievalConfig
from apps.rag.forms import (
    CollectionForm,
    CollectionSettingsForm,
    DatasetImportForm,
    EvalRunForm,
    ImportForm,
    PlaygroundForm,
    ShareForm,
    UploadForm,
    playground_initial,
    settings_initial,
)
from apps.rag.models import DocumentStatus, RetrievalEvalResult
from apps.rag.rerank import rerank_available
from apps.rag.retrieval import retrieve
from apps.rag.switches import collection_panels

DOCUMENTS_PER_PAGE = 50


def _done(request, url: str, message: str | None = None):
    if message:
        messages.success(request, message)
    return htmx_location(url) if is_fragment_request(request) else redirect(url)


# --- collections -----------------------------------------------------------------------------------

@login_required
@require_GET
def collection_list(request):
    return render(request, "rag/list.html", {
        "collections": selectors.collection_list(actor=request.user),
        "may_create": selectors.teams_that_may_create(request.user).exists(),
    })


@login_required
@require_http_methods(["GET", "POST"])
def collection_create(request):
    teams = selectors.teams_that_may_create(request.user).order_by("name")
    if not teams.exists():
        raise PermissionDenied("Only engineers and owners of a team can create collections.")
    form = CollectionForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            collection = services.collection_create(
                team=data["team"], name=data["name"], description=data["description"],
                data_class=data["data_class"], embedding_model=data["embedding_model"],
                answer_model=data["answer_model"], chunking=form.chunking(), user=request.user)
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            return _done(request, collection.get_absolute_url(), f"Collection {collection.name} created.")
    return render(request, "rag/create.html", {"form": form}, status=400 if form.is_bound else 200)


def _collection_context(request, collection) -> dict:
    user = request.user
    return {
        "collection": collection,
        "may_change": can(user, Action.CHANGE, collection),
        "may_manage": can(user, Action.MANAGE, collection),
        "counts": selectors.status_counts(collection),
        "freshness": selectors.freshness(collection),
        "active_jobs": selectors.active_jobs(collection),
        "recent_jobs": selectors.recent_jobs(collection),
    }


@login_required
@require_GET
def collection_detail(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    status = request.GET.get("status", "")
    status = status if status in DocumentStatus.values else ""
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.document_list(collection=collection, status=status, search=search),
                     DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = _collection_context(request, collection)
    context.update({"page": page, "status": status, "search": search, "upload_form": UploadForm(),
                    "import_form": ImportForm(), "share_form": ShareForm(),
                    "datasets": selectors.dataset_list(collection=collection),
                    "panels": collection_panels.panels(collection=collection, user=request.user)})
    return render_page_or_fragment(request, "rag/detail.html", context, fragment="documents")


@login_required
@require_GET
def collection_progress(request, pk: int):
    """The polled fragment: jobs with progress bars, status counts and freshness. Polls only while active."""
    collection = selectors.collection_get(actor=request.user, pk=pk)
    context = _collection_context(request, collection)
    response = render(request, "rag/partials/_progress.html", context)
    if request.GET.get("was_active") and not context["active_jobs"]:
        response["HX-Trigger"] = "rag-indexed"  # the documents table reloads once the job ends
    return response


@login_required
@require_http_methods(["GET", "POST"])
def collection_settings(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = CollectionSettingsForm(request.POST or None, initial=settings_initial(collection))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.collection_update(
                collection=collection, user=request.user, description=data["description"],
                data_class=data["data_class"], answer_model=data["answer_model"],
                answer_prompt=data["answer_prompt"], chunking=form.chunking(), retrieval=data["retrieval_json"])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = field if field in form.fields else (
                    "retrieval_json" if field.startswith("retrieval") else None)
                form.add_error(target, errors if target != "retrieval_json" else [f"{field}: {e}" for e in errors])
        else:
            return _done(request, collection.get_absolute_url(), "Settings saved.")
    return render(request, "rag/settings.html", {"form": form, "collection": collection},
                  status=400 if form.is_bound else 200)


@login_required
@require_POST
def collection_delete(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.MANAGE)
    name = collection.name
    services.collection_delete(collection=collection, user=request.user)
    return _done(request, reverse("rag:list"), f"Collection {name} deleted.")


@login_required
@require_POST
def collection_share(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.MANAGE)
    form = ShareForm(request.POST)
    if form.is_valid():
        grantee = get_user_model().objects.filter(username=form.cleaned_data["username"], is_active=True).first()
        if grantee is None:
            messages.error(request, f"There is no active user {form.cleaned_data['username']!r}.")
        else:
            services.collection_share(collection=collection, grantee=grantee,
                                      action=form.cleaned_data["permission"], user=request.user)
            messages.success(request, f"{grantee.get_username()} may now {form.cleaned_data['permission']} "
                                      f"{collection.name}.")
    else:
        messages.error(request, "Give a username and a permission.")
    return _done(request, collection.get_absolute_url())


@login_required
@require_POST
def collection_reindex(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    only_failed = request.POST.get("only_failed") == "1"
    job = services.collection_reindex(collection=collection, user=request.user, only_failed=only_failed)
    message = (f"Queued {job.progress_total} document{'s' if job.progress_total != 1 else ''} for indexing."
               if job else "Nothing to index.")
    return _done(request, collection.get_absolute_url(), message)


# --- documents -------------------------------------------------------------------------------------

def _detail_with_errors(request, collection, *, upload_form=None, import_form=None):
    context = _collection_context(request, collection)
    context.update({
        "page": Paginator(selectors.document_list(collection=collection), DOCUMENTS_PER_PAGE).get_page(1),
        "upload_form": upload_form or UploadForm(), "import_form": import_form or ImportForm(),
        "share_form": ShareForm(), "datasets": selectors.dataset_list(collection=collection),
        "status": "", "search": "",
    })
    return render(request, "rag/detail.html", context, status=400)


@login_required
@require_POST
def document_upload(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _detail_with_errors(request, collection, upload_form=form)
    items, errors = [], []
    for upload in form.cleaned_data["file"]:
        try:
            fmt = services.validate_upload(upload.name, upload.size)
        except ValidationError as exc:
            errors.extend(exc.message_dict["file"])
            continue
        items.append(services.DocumentInput(source_name=upload.name, content=upload.read(), format=fmt))
    if not errors:
        try:
            result = services.documents_upsert(collection=collection, items=items, user=request.user,
                                               trigger="upload")
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        for error in errors:
            form.add_error("file", error)
        return _detail_with_errors(request, collection, upload_form=form)
    parts = []
    if result.created:
        parts.append(f"{len(result.created)} added")
    if result.changed:
        parts.append(f"{len(result.changed)} changed (re-indexing)")
    if result.unchanged:
        parts.append(f"{len(result.unchanged)} unchanged (skipped)")
    return _done(request, collection.get_absolute_url(), "Upload: " + ", ".join(parts) + ".")


@login_required
@require_POST
def corpus_import(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > services.max_import_bytes():
            form.add_error("file", f"{upload.name} is {services.human_size(upload.size)}; the import limit is "
                                   f"{services.human_size(services.max_import_bytes())}.")
        else:
            try:
                items = services.corpus_items(upload.read().decode("utf-8-sig", errors="replace"))
                result = services.documents_upsert(collection=collection, items=items, user=request.user,
                                                   remove_missing=form.cleaned_data["remove_missing"],
                                                   trigger="import")
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error("file", message)
            else:
                summary = result.summary
                return _done(request, collection.get_absolute_url(),
                             f"Import: {summary['created']} added, {summary['changed']} changed, "
                             f"{summary['unchanged']} unchanged, {summary['removed']} removed.")
    return _detail_with_errors(request, collection, import_form=form)


@login_required
@require_GET
def document_detail(request, pk: int, doc: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    document = selectors.document_get(collection=collection, pk=doc)
    chunks = list(document.chunks.order_by("position").defer("embedding"))
    try:
        focus = int(request.GET.get("chunk", "0"))
    except ValueError:
        focus = 0
    segments = _segments(document.text, chunks)
    return render(request, "rag/document.html", {
        "collection": collection, "document": document, "chunks": chunks, "segments": segments, "focus": focus,
        "may_change": can(request.user, Action.CHANGE, collection),
    })


def _segments(text: str, chunks) -> list[dict]:
    """The document text cut at chunk starts, each piece tagged with the chunk it opens (for anchors)."""
    starts = sorted({c.char_start: c for c in chunks}.items())
    pieces, cursor = [], 0
    for start, chunk in starts:
        if start > cursor:
            pieces.append({"text": text[cursor:start], "chunk": None})
        end = max(chunk.char_end, start)
        next_start = next((s for s, _ in starts if s > start), len(text))
        end = min(end, next_start) if next_start > start else end
        pieces.append({"text": text[start:end], "chunk": chunk})
        cursor = max(cursor, end)
    if cursor < len(text):
        pieces.append({"text": text[cursor:], "chunk": None})
    return pieces


@login_required
@require_POST
def document_retry(request, pk: int, doc: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    document = selectors.document_get(collection=collection, pk=doc)
    try:
        services.document_retry(document=document, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _done(request, collection.get_absolute_url())
    return _done(request, collection.get_absolute_url(), f"{document.source_name} queued again.")


@login_required
@require_POST
def document_delete(request, pk: int, doc: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    document = selectors.document_get(collection=collection, pk=doc)
    services.document_delete(document=document, user=request.user)
    return _done(request, collection.get_absolute_url(), f"{document.source_name} deleted.")


# --- playground ------------------------------------------------------------------------------------

def _config_form(data, prefix: str, base: RetrievalConfig) -> PlaygroundForm:
    if data is not None and any(key.startswith(f"{prefix}-") for key in data):
        return PlaygroundForm(data, prefix=prefix)
    return PlaygroundForm(prefix=prefix, initial=playground_initial(base))


def _run(form: PlaygroundForm, base: RetrievalConfig, collection, query: str, actor):
    if form.is_bound and not form.is_valid():
        return None
    try:
        config = form.config(base) if form.is_bound else base
    except ValidationError:
        return None
    try:
        return retrieve(collection=collection, query=query, actor=actor, config=config)
    except LlmError as exc:
        form.add_error(None, f"The query could not be embedded: {exc}")
        return None


@login_required
@require_GET
def playground(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    base = RetrievalConfig.from_dict(collection.retrieval)
    query = request.GET.get("q", "").strip()
    compare = request.GET.get("compare") == "1"
    data = request.GET if query else None
    form_a = _config_form(data, "a", base)
    # Out of the box, B is plain RRF: the comparison shows what the tuned fusion changes.
    base_b = base.replace(fusion="rrf", rrf_k=60, bm25_weight=1.0, vector_weight=1.0)
    form_b = _config_form(data, "b", base_b)
    result_a = result_b = None
    if query:
        result_a = _run(form_a, base, collection, query, request.user)
        if compare:
            result_b = _run(form_b, base_b, collection, query, request.user)
    return render_page_or_fragment(request, "rag/playground.html", {
        "collection": collection, "query": query, "compare": compare, "form_a": form_a, "form_b": form_b,
        "result_a": result_a, "result_b": result_b, "rerank_available": rerank_available(collection),
        "answer_params": request.GET.urlencode(),
    }, fragment="results")


@login_required
@require_POST
def answer(request, pk: int):
    """Answer the playground question from configuration A's top chunks (a POST: it calls a model)."""
    collection = selectors.collection_get(actor=request.user, pk=pk)
    query = request.POST.get("q", "").strip()
    base = RetrievalConfig.from_dict(collection.retrieval)
    form = _config_form(request.POST, "a", base)
    error = None
    result = None
    retrieval = None
    if not query:
        error = "Ask a question first."
    else:
        retrieval = _run(form, base, collection, query, request.user)
        if retrieval is None:
            error = "; ".join(str(e) for errors in form.errors.values() for e in errors) or "Check the settings."
        else:
            try:
                result = answer_question(collection=collection, retrieval=retrieval, user=request.user)
            except LlmError as exc:
                error = f"The model call failed: {exc}"
            except ValidationError as exc:
                error = "The answer prompt could not be rendered: " + "; ".join(exc.messages)
            except RenderFailed as exc:  # a prompt render failure: say it, not a 500
                error = "The answer prompt could not be rendered: " + "; ".join(p.message for p in exc.problems)
    return render(request, "rag/partials/_answer.html", {
        "collection": collection, "answer": result, "retrieval": retrieval, "error": error, "query": query,
    }, status=200 if error is None else 400)


# --- retrieval evals -------------------------------------------------------------------------------

@login_required
@require_GET
def evals(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    datasets = selectors.dataset_list(collection=collection)
    base = RetrievalConfig.from_dict(collection.retrieval)
    return render(request, "rag/evals.html", {
        "collection": collection, "datasets": datasets, "runs": selectors.run_list(collection=collection)[:50],
        "may_change": can(request.user, Action.CHANGE, collection),
        "dataset_form": DatasetImportForm(), "run_form": EvalRunForm(datasets=datasets),
        "config_form": PlaygroundForm(prefix="cfg", initial=playground_initial(base)),
    })


@login_required
@require_POST
def dataset_import(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = DatasetImportForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            dataset = evaluation.dataset_import(
                collection=collection, name=data["name"], split=data["split"], user=request.user,
                queries_text=data["queries"].read().decode("utf-8-sig", errors="replace"),
                qrels_text=data["qrels"].read().decode("utf-8-sig", errors="replace"))
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            return _done(request, reverse("rag:evals", kwargs={"pk": pk}),
                         f"Dataset {dataset.name}: {dataset.query_count} queries imported.")
    datasets = selectors.dataset_list(collection=collection)
    base = RetrievalConfig.from_dict(collection.retrieval)
    return render(request, "rag/evals.html", {
        "collection": collection, "datasets": datasets, "runs": selectors.run_list(collection=collection)[:50],
        "may_change": True, "dataset_form": form, "run_form": EvalRunForm(datasets=datasets),
        "config_form": PlaygroundForm(prefix="cfg", initial=playground_initial(base)),
    }, status=400)


@login_required
@require_POST
def eval_run_create(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk, action=Action.CHANGE)
    datasets = selectors.dataset_list(collection=collection)
    form = EvalRunForm(request.POST, datasets=datasets)
    base = RetrievalConfig.from_dict(collection.retrieval)
    config_form = PlaygroundForm(request.POST, prefix="cfg")
    if form.is_valid() and config_form.is_valid():
        try:
            config = config_form.config(base)
            run = evaluation.eval_run_create(dataset=form.cleaned_data["dataset"], config=config,
                                             collection=collection, label=form.cleaned_data["label"],
                                             user=request.user)
        except ValidationError:
            pass
        else:
            return _done(request, reverse("rag:eval_run", kwargs={"pk": pk, "run": run.pk}), "Eval run queued.")
    return render(request, "rag/evals.html", {
        "collection": collection, "datasets": datasets, "runs": selectors.run_list(collection=collection)[:50],
        "may_change": True, "dataset_form": DatasetImportForm(), "run_form": form, "config_form": config_form,
    }, status=400)


@login_required
@require_GET
def eval_run_detail(request, pk: int, run: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    eval_run = selectors.run_get(collection=collection, pk=run)
    leg = request.GET.get("leg", "hybrid")
    leg = leg if leg in evaluation.LEGS else "hybrid"
    only_missed = request.GET.get("missed") == "1"
    results = (RetrievalEvalResult.objects.filter(run=eval_run, leg=leg).select_related("query")
               .order_by("ndcg10", "query__query_id"))
    if only_missed:
        results = results.filter(recall100__lt=1)
    page = Paginator(results, 50).get_page(request.GET.get("page"))
    for result in page.object_list:
        result.ranks = sorted(result.relevant_ranks.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))
    return render_page_or_fragment(request, "rag/eval_run.html", {
        "collection": collection, "run": eval_run, "leg": leg, "legs": evaluation.LEGS, "page": page,
        "only_missed": only_missed, "metrics": evaluation.METRICS,
    }, fragment="progress" if request.GET.get("fragment") == "progress" else "drilldown")


@login_required
@require_GET
def eval_compare(request, pk: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    ids = [int(x) for x in request.GET.getlist("run") if x.isdigit()][:4]
    runs = [selectors.run_get(collection=collection, pk=i) for i in ids]
    keys = sorted({k for r in runs for k in r.config})
    differing = [k for k in keys if len({json.dumps(r.config.get(k), sort_keys=True) for r in runs}) > 1]
    return render(request, "rag/eval_compare.html", {
        "collection": collection, "runs": runs, "legs": evaluation.LEGS, "metrics": evaluation.METRICS,
        "differing": differing, "all_runs": selectors.run_list(collection=collection)[:50],
    })


@login_required
@require_GET
def eval_run_csv(request, pk: int, run: int):
    collection = selectors.collection_get(actor=request.user, pk=pk)
    eval_run = selectors.run_get(collection=collection, pk=run)

    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="rag-eval-run-{eval_run.pk}.csv"'
    writer = csv.writer(response)
    writer.writerow(["query_id", "leg", "ndcg@10", "recall@10", "recall@100", "mrr@10", "missed"])
    for r in RetrievalEvalResult.objects.filter(run=eval_run).select_related("query").order_by("query_id", "leg"):
        missed = [d for d, rank in r.relevant_ranks.items() if rank is None]
        writer.writerow([r.query.query_id, r.leg, f"{r.ndcg10:.4f}", f"{r.recall10:.4f}", f"{r.recall100:.4f}",
                         f"{r.mrr10:.4f}", " ".join(missed)])
    return response
