"""The red-team pages: campaigns (list, launch, the campaign with live progress, findings triage, compare,
the printable report), a prompt's trend across versions, the team's probes and gate thresholds. Thin: parse →
selector/service → render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, teams_for
from apps.core import charts
from apps.core.forms import apply_service_errors, service_errors_on
from apps.core.htmx import htmx_location, is_fragment_request, render_page_or_fragment
from apps.evals import selectors as evals_selectors
from apps.gateway import selectors as gateway_selectors
from apps.prompts import selectors as prompts_selectors
from apps.rag import selectors as rag_selectors
from apps.redteam import library_glue, selectors, services
from apps.redteam.forms import (
    CampaignForm,
    EvidenceForm,
    PolicyForm,
    ProbeImportForm,
    ToDatasetForm,
    TriageForm,
)
from apps.redteam.models import CampaignStatus, Triage
from apps.redteam.owasp import OWASP_2025

INDIRECT_ROWS = 200  # indirect attacks listed with their retrieval on the campaign page and the report


@login_required
@require_GET
def campaign_list(request):
    status = request.GET.get("status", "")
    page = Paginator(selectors.campaign_list(actor=request.user, status=status), 50).get_page(request.GET.get("page"))
    return render_page_or_fragment(request, "redteam/list.html", {
        "page": page, "status": status, "statuses": CampaignStatus.choices,
        "may_launch": teams_for(request.user, Action.CHANGE).exists()}, "results")


def _campaign_form(request, data=None, initial=None) -> CampaignForm:
    evaluators = list(evals_selectors.evaluator_list(actor=request.user))
    return CampaignForm(
        data, initial=initial,
        versions=prompts_selectors.version_choices(actor=request.user, action=Action.CHANGE),
        keys=gateway_selectors.keys_for(request.user).filter(revoked_at__isnull=True)
        .exclude(pk__in=selectors.run_key_ids()),  # a campaign's own twin keys are not targets
        libraries=library_glue.library_versions(), strategies=library_glue.strategy_names(),
        evaluators=[e for e in evaluators if e.kind != "llm_judge"],
        judges=[e for e in evaluators if e.kind == "llm_judge"],
        collections=rag_selectors.collection_list(actor=request.user))


@login_required
@require_http_methods(["GET", "POST"])
def campaign_create(request):
    initial = {"strategies": library_glue.strategy_names()[:1], "include_team_probes": True}
    versions = library_glue.library_versions()
    if versions:
        initial["library_version"] = versions[-1]
    form = _campaign_form(request, request.POST or None, initial)
    prompt = request.GET.get("prompt", "")
    if prompt.isdigit():  # from a prompt's page: its newest version the person may attack
        form.initial["prompt_version"] = next(
            (pk for pk, label in form.fields["prompt_version"].choices if pk and form.version_prompts[pk] == int(prompt)),
            None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        version = key = None
        if data["target_kind"] == "prompt_version" and data["prompt_version"]:
            version = prompts_selectors.version_for(actor=request.user, pk=data["prompt_version"])
        if data["target_kind"] == "gateway_key" and data["gateway_key"]:
            key = gateway_selectors.key_get(request.user, data["gateway_key"], Action.CHANGE)
        evaluators = [evals_selectors.evaluator_get(actor=request.user, pk=pk) for pk in data["evaluators"]]
        judge = evals_selectors.evaluator_get(actor=request.user, pk=data["judge"]) if data["judge"] else None
        collection = rag_selectors.collection_visible(actor=request.user, pk=data["rag_collection"]) \
            if data["rag_collection"] else None
        with service_errors_on(form, {"target": "prompt_version"}):
            campaign = services.campaign_create(
                actor=request.user, name=data["name"], model=data["model"], strategies=data["strategies"],
                library_version=data["library_version"], include_team_probes=data["include_team_probes"],
                prompt_version=version, variables=data["variables"], attack_variable=data["attack_variable"],
                gateway_key=key, system_prompt=data["system_prompt"], evaluators=evaluators, judge=judge,
                concurrency=data["concurrency"], rag_collection=collection)
            messages.success(request, f"Campaign “{campaign.name}” launched.")
            return redirect(campaign)
    return render(request, "redteam/create.html", {"form": form}, status=400 if form.errors else 200)


def _detail_context(request, campaign, **forms) -> dict:
    may_change = selectors.can_change(request.user, campaign)
    policy = selectors.policy_for(campaign.team_id)
    page = Paginator(selectors.findings(campaign=campaign), 50).get_page(request.GET.get("page"))
    datasets = list(selectors.triage_datasets(actor=request.user, campaign=campaign)) if may_change else []
    conditions = list(selectors.evidence_conditions(actor=request.user, campaign=campaign)) \
        if campaign.status == CampaignStatus.FINISHED else []
    return {"campaign": campaign, "summary": campaign.summary or {}, "page": page, "may_change": may_change,
            "triage_form": TriageForm(), "dataset_form": ToDatasetForm(datasets=datasets) if datasets else None,
            "evidence_form": forms.get("evidence_form") or (EvidenceForm(conditions=conditions) if conditions else None),
            "agreement": selectors.judge_agreement(campaign.judge), "judge_problem":
                selectors.judge_problem(campaign, policy), "breaches": selectors.category_breaches(campaign, policy),
            "policy": policy, "others": selectors.campaign_list(actor=request.user).exclude(pk=campaign.pk)[:30],
            "triage_choices": [c for c in Triage.choices if c[0]], "multi_turn": selectors.multi_turn_driver(campaign),
            "indirect": selectors.indirect_attacks(campaign=campaign)[:INDIRECT_ROWS], "indirect_rows": INDIRECT_ROWS}


@login_required
@require_GET
def campaign_detail(request, pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk)
    return render_page_or_fragment(request, "redteam/detail.html", _detail_context(request, campaign), "findings")


@login_required
@require_GET
def campaign_progress(request, pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk)
    return render(request, "redteam/partials/_progress.html",
                  {"campaign": campaign, "poll": bool(request.GET.get("poll"))})


@login_required
@require_POST
def campaign_cancel(request, pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk, action=Action.CHANGE)
    try:
        services.campaign_cancel(campaign=campaign, actor=request.user)
        messages.success(request, "Cancelled: attacks in flight land, no new one starts.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(campaign)


@login_required
@require_POST
def campaign_resume(request, pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk, action=Action.CHANGE)
    try:
        services.campaign_resume(campaign=campaign, actor=request.user)
        messages.success(request, "Resumed: only the attacks not done yet run.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(campaign)


def _attack_of(request, pk: int, attack_pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk, action=Action.CHANGE)
    try:
        return campaign, selectors.attack_get(campaign=campaign, pk=attack_pk)
    except Exception as exc:  # noqa: BLE001 - DoesNotExist of another campaign's attack: a 404
        raise Http404("No such attack in this campaign.") from exc


def _finding_response(request, campaign, attack, errors: list[str] | None = None):
    if is_fragment_request(request):
        context = _detail_context(request, campaign)
        context.update({"attack": attack, "errors": errors or []})
        return render(request, "redteam/partials/_finding.html", context, status=400 if errors else 200)
    for error in errors or []:
        messages.error(request, error)
    return redirect(campaign)


@login_required
@require_POST
def attack_triage(request, pk: int, attack_pk: int):
    campaign, attack = _attack_of(request, pk, attack_pk)
    form = TriageForm(request.POST)
    if not form.is_valid():
        return _finding_response(request, campaign, attack, ["Choose accepted risk, to fix, or false positive."])
    try:
        attack = services.attack_triage(attack=attack, actor=request.user, **form.cleaned_data)
    except ValidationError as exc:
        return _finding_response(request, campaign, attack, exc.messages)
    return _finding_response(request, campaign, attack)


@login_required
@require_POST
def attack_to_dataset(request, pk: int, attack_pk: int):
    campaign, attack = _attack_of(request, pk, attack_pk)
    datasets = selectors.triage_datasets(actor=request.user, campaign=campaign)
    form = ToDatasetForm(request.POST, datasets=datasets)
    if not form.is_valid():
        return _finding_response(request, campaign, attack, ["Choose one of the team's datasets."])
    try:
        attack = services.attack_to_dataset_item(attack=attack, actor=request.user,
                                                 dataset=datasets.get(pk=form.cleaned_data["dataset"]))
    except ValidationError as exc:
        return _finding_response(request, campaign, attack, exc.messages)
    return _finding_response(request, campaign, attack)


@login_required
@require_POST
def campaign_evidence(request, pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk)
    conditions = selectors.evidence_conditions(actor=request.user, campaign=campaign)
    form = EvidenceForm(request.POST, conditions=conditions)
    if form.is_valid():
        with service_errors_on(form):
            services.campaign_evidence_control(campaign=campaign, actor=request.user,
                                               condition=conditions.get(pk=form.cleaned_data["condition"]))
            messages.success(request, "Submitted as the evidence of the red-team control; a reviewer accepts it.")
            return redirect(campaign)
    return render(request, "redteam/detail.html", _detail_context(request, campaign, evidence_form=form), status=400)


@login_required
@require_GET
def campaign_report(request, pk: int):
    campaign = selectors.campaign_get(actor=request.user, pk=pk)
    summary = campaign.summary or {}
    by_owasp: dict[str, dict] = {code: {"code": code, "name": name, "categories": []}
                                 for code, name in OWASP_2025.items()}
    unmapped = []
    for row in summary.get("categories", []):
        (by_owasp[row["owasp"].upper()]["categories"] if row["owasp"].upper() in by_owasp else unmapped).append(row)
    policy = selectors.policy_for(campaign.team_id)
    return render(request, "redteam/report.html", {
        "campaign": campaign, "summary": summary, "owasp": list(by_owasp.values()), "unmapped": unmapped,
        "findings": selectors.findings(campaign=campaign)[:200], "policy": policy,
        "indirect": selectors.indirect_attacks(campaign=campaign)[:INDIRECT_ROWS], "indirect_rows": INDIRECT_ROWS,
        "breaches": selectors.category_breaches(campaign, policy),
        "agreement": selectors.judge_agreement(campaign.judge), "judge_problem": selectors.judge_problem(campaign, policy)})


@login_required
@require_GET
def campaign_compare(request):
    a_pk, b_pk = request.GET.get("a", ""), request.GET.get("b", "")
    if not (a_pk.isdigit() and b_pk.isdigit()):
        raise Http404("Choose two campaigns.")
    a = selectors.campaign_get(actor=request.user, pk=int(a_pk))
    b = selectors.campaign_get(actor=request.user, pk=int(b_pk))
    return render(request, "redteam/compare.html", {"a": a, "b": b, "result": selectors.compare(a, b)})


@login_required
@require_GET
def prompt_trend(request, prompt_pk: int):
    prompt = prompts_selectors.prompt_by_pk(pk=prompt_pk)
    if prompt is None or not prompts_selectors.prompt_list(actor=request.user).filter(pk=prompt_pk).exists():
        raise Http404("No such prompt.")
    rows = selectors.trend(actor=request.user, prompt_id=prompt_pk)
    return render(request, "redteam/trend.html", {"prompt": prompt, "rows": rows,
                                                  "chart": _trend_chart(rows)})


def _trend_chart(rows: list[dict]) -> str:
    if not rows:
        return ""
    series = {name: [(f"v{r['version']}", round(100 * r[field], 1) if r[field] is not None else None,
                      f"{r['total']} attacks") for r in rows]
              for name, field in (("ASR %", "asr"), ("upper bound (Wilson 95 %)", "high"))}
    return charts.to_html(charts.category_lines(series=series, y_title="attack success rate (%)", x_title="version"))


@login_required
@require_http_methods(["GET", "POST"])
def probes(request):
    change_teams = list(teams_for(request.user, Action.CHANGE).order_by("name"))
    manage_teams = list(teams_for(request.user, Action.MANAGE).order_by("name"))
    import_form = ProbeImportForm(teams=change_teams)
    policy_form = PolicyForm(teams=manage_teams, initial={"default_max_asr": 0.2, "min_judge_kappa": 0.6})
    status = 200
    if request.method == "POST" and request.POST.get("form") == "import":
        import_form = ProbeImportForm(request.POST, request.FILES, teams=change_teams)
        if import_form.is_valid():
            data = import_form.cleaned_data
            team = next(t for t in change_teams if t.pk == data["team"])
            raw = data["file"].read()
            try:
                counts = services.team_probes_import(team=team, actor=request.user, replace=data["replace"],
                                                     text=raw.decode("utf-8"))
            except UnicodeDecodeError:
                import_form.add_error("file", "The file is not UTF-8 text.")
            except ValidationError as exc:
                apply_service_errors(import_form, exc)
            else:
                messages.success(request, f"{counts['added']} probe(s) added, {counts['updated']} updated.")
                return redirect("redteam:probes")
        status = 400
    elif request.method == "POST" and request.POST.get("form") == "policy":
        policy_form = PolicyForm(request.POST, teams=manage_teams)
        if policy_form.is_valid():
            data = dict(policy_form.cleaned_data)
            team = next(t for t in manage_teams if t.pk == data.pop("team"))
            with service_errors_on(policy_form):
                services.policy_set(team=team, actor=request.user, **data)
                messages.success(request, f"Red-team thresholds of {team.name} saved.")
                return redirect("redteam:probes")
        status = 400
    elif request.method == "POST":
        status = 400
    return render(request, "redteam/probes.html", {
        "import_form": import_form, "policy_form": policy_form,
        "probes": selectors.team_probes(actor=request.user).order_by("team__name", "probe_id")[:500],
        "policies": selectors.policies(actor=request.user)}, status=status)


@login_required
@require_POST
def probe_delete(request, probe_pk: int):
    probe = selectors.team_probe_get(actor=request.user, pk=probe_pk)
    services.team_probe_delete(probe=probe, actor=request.user)
    messages.success(request, f"Probe {probe.probe_id} deleted.")
    if is_fragment_request(request):
        return htmx_location(reverse("redteam:probes"))
    return redirect("redteam:probes")
