"""The playground: fill a version's variables, pick models (and optionally a second version), run, compare.

Without JavaScript the form POST runs every call and renders the results. With JavaScript
(static/portal/prompts.js) the POST only prepares the runs (pending rows) and each card streams its output
over Server-Sent Events from `run_stream`. Every call goes through apps.llm.calls with source "playground",
so it is priced and recorded on the usage ledger like any other.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.permissions import Action, can, require
from apps.costs.models import Source
from apps.costs.services import UsageContext
from apps.llm import calls
from apps.llm.cache import CachePolicy
from apps.llm.errors import LlmError
from apps.llm.models import ModelKind
from apps.llm.selectors import model_list
from apps.prompts import registry, selectors
from apps.prompts.models import PlaygroundRun, PromptVersion
from apps.prompts.rendering import coerce_variables, include_graph, render_version
from apps.prompts.templating import RenderFailed

MAX_MODELS = 4
PENDING, RUNNING, OK, ERROR = "pending", "running", "ok", "error"


def chat_models() -> list[str]:
    return list(model_list(kind=ModelKind.CHAT).values_list("name", flat=True))


def _variables_of(versions: list[PromptVersion]) -> list[str]:
    names: set[str] = set()
    for version in versions:
        names |= set(version.variables) | include_graph(version).variables
    return sorted(names)


def _inputs(post, names: list[str], schema: dict | None) -> dict:
    return coerce_variables({n: post.get(f"var_{n}", "") for n in names if f"var_{n}" in post}, schema)


def _usage_context(version: PromptVersion, user) -> UsageContext:
    return UsageContext(source=Source.PLAYGROUND, team_id=version.prompt.team_id, user_id=user.pk,
                        feature="playground", prompt_name=version.prompt.name, prompt_version=version.number)


def _call_options(version: PromptVersion) -> dict:
    config = version.config or {}
    options = {key: config[key] for key in ("temperature", "max_tokens", "tools") if config.get(key) is not None}
    if isinstance(config.get("response_format"), dict):
        options["response_format"] = config["response_format"]
    options["cache"] = CachePolicy.from_config(config.get("cache"))  # the version's opt-in (llm/cache.py)
    return options


@dataclass
class Prepared:
    runs: list[PlaygroundRun]
    problems: dict  # version number -> [Problem]


def prepare_runs(*, versions: list[PromptVersion], models: list[str], inputs: dict, user) -> Prepared:
    """Render every version with the same inputs; one pending run per (version, model) that rendered."""
    batch = uuid.uuid4()
    runs, problems = [], {}
    for version in versions:
        try:
            rendered = render_version(version, inputs, allow_extra=len(versions) > 1)
        except RenderFailed as exc:
            problems[version.number] = exc.problems
            continue
        for model in models:
            runs.append(PlaygroundRun(version=version, batch=batch, user=user, inputs=inputs, model=model,
                                      rendered=rendered.as_messages(), status=PENDING))
    PlaygroundRun.objects.bulk_create(runs)
    return Prepared(runs, problems)


def execute_run(run: PlaygroundRun) -> PlaygroundRun:
    """Call the model once, without streaming, and store the outcome on the run."""
    context = _usage_context(run.version, run.user)
    run.request_id = context.request_id
    try:
        result = calls.chat(model=run.model, messages=run.rendered, context=context, **_call_options(run.version))
    except LlmError as exc:
        _fail(run, str(exc))
    except Exception as exc:  # noqa: BLE001 - a refusal (budget) or a bug: show it on the card, not a 500
        _fail(run, f"{type(exc).__name__}: {exc}")
    else:
        _finish(run, result)
    return run


def _finish(run: PlaygroundRun, result) -> None:
    run.status = OK
    run.output = result.text
    run.input_tokens = result.usage.input_tokens
    run.output_tokens = result.usage.output_tokens
    run.cost = result.cost
    run.latency_ms = result.latency_ms
    run.request_id = result.request_id or run.request_id
    run.save()


def _fail(run: PlaygroundRun, message: str) -> None:
    run.status = ERROR
    run.error = message[:500]
    run.save()


def _run_card(run: PlaygroundRun, user) -> dict:
    actions = []
    for action in registry.playground_actions():
        try:
            url = action.url(run=run, user=user)
        except Exception:  # noqa: BLE001 - another app's hook must not break the playground
            url = None
        if url:
            actions.append({"label": action.label, "url": url})
    return {"run": run, "actions": actions}


@login_required
@require_http_methods(["GET", "POST"])
def playground(request, name: str, number: int):
    prompt = selectors.prompt_get(actor=request.user, name=name)
    version = selectors.version_get(prompt=prompt, number=number)
    may_run = can(request.user, Action.CHANGE, prompt)
    available = chat_models()
    default_model = (version.config or {}).get("model") or settings.PORTAL_DEFAULT_CHAT_MODEL
    compare_number = request.POST.get("compare") or request.GET.get("compare") or ""
    compare = None
    if compare_number.isdigit() and int(compare_number) != number:
        compare = selectors.version_get(prompt=prompt, number=int(compare_number))
    versions = [version] + ([compare] if compare else [])
    names = _variables_of(versions)
    context = {
        "prompt": prompt, "version": version, "compare": compare, "variables": names, "models": available,
        "chosen_models": request.POST.getlist("models") or [default_model], "may_run": may_run,
        "numbers": list(range(prompt.latest_version_number, 0, -1)), "values": {}, "errors": [],
    }
    if request.method == "POST":
        if not may_run:
            raise PermissionDenied("Only engineers of the owning team may run the playground (it spends money).")
        inputs = _inputs(request.POST, names, version.variables_schema)
        context["values"] = {k: request.POST.get(f"var_{k}", "") for k in names}
        chosen = [m for m in dict.fromkeys(request.POST.getlist("models")) if m]
        unknown = [m for m in chosen if m not in available]
        if not chosen:
            context["errors"].append("Pick at least one model.")
        elif len(chosen) > MAX_MODELS:
            context["errors"].append(f"Pick at most {MAX_MODELS} models at a time.")
        elif unknown:
            context["errors"].append(f"Not in the catalog (or disabled): {', '.join(unknown)}.")
        if not context["errors"]:
            prepared = prepare_runs(versions=versions, models=chosen, inputs=inputs, user=request.user)
            context["problems"] = prepared.problems
            streaming = request.headers.get("X-Playground-Stream") == "1"
            if not streaming:
                for run in prepared.runs:
                    execute_run(run)
            context["cards"] = [_run_card(run, request.user) for run in prepared.runs]
            context["streaming"] = streaming
            if streaming:
                return render(request, "prompts/partials/_playground_results.html", context,
                              status=422 if prepared.problems and not prepared.runs else 200)
        status = 422 if context["errors"] or context.get("problems") else 200
        return render(request, "prompts/playground.html", context, status=status)
    return render(request, "prompts/playground.html", context)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


@login_required
@require_GET
def run_stream(request, batch, index: int):
    """SSE: stream one pending run of the caller's batch; a run already taken sends its stored result."""
    runs = list(PlaygroundRun.objects.filter(batch=batch).select_related("version", "version__prompt")
                .order_by("id"))
    if not 0 <= index < len(runs) or runs[index].user_id != request.user.pk:
        raise Http404("No such playground run.")
    run = runs[index]
    require(request.user, Action.CHANGE, run.version.prompt)  # still an engineer of the owning team
    claimed = PlaygroundRun.objects.filter(pk=run.pk, status=PENDING).update(status=RUNNING) == 1

    def events():
        if not claimed:
            run.refresh_from_db()
            yield _sse("done" if run.status == OK else "error", _summary(run))
            return
        yield from _stream(run)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _summary(run: PlaygroundRun) -> dict:
    return {"status": run.status, "output": run.output, "error": run.error, "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens, "latency_ms": run.latency_ms,
            "cost": None if run.cost is None else f"{run.cost:.6f}", "model": run.model,
            "version": run.version.number}


def _stream(run: PlaygroundRun):
    context = _usage_context(run.version, run.user)
    run.request_id = context.request_id
    run.status = RUNNING
    try:
        stream = calls.chat_stream(model=run.model, messages=run.rendered, context=context, **_call_options(run.version))
        with stream:
            for delta in stream:
                yield _sse("delta", {"text": delta})
        _finish(run, stream.result)
        yield _sse("done", _summary(run))
    except LlmError as exc:
        _fail(run, str(exc))
        yield _sse("error", _summary(run))
    except Exception as exc:  # noqa: BLE001 - the stream must end with a message, not a broken connection
        _fail(run, f"{type(exc).__name__}: {exc}")
        yield _sse("error", _summary(run))
    finally:
        if run.status == RUNNING:  # the browser went away mid-stream
            _fail(run, "Cancelled: the page was closed before the answer finished.")
