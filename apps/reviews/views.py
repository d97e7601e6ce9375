"""Pages of the use-case review: council queue and register, intake with progressive disclosure, the use-case
page with its actions, the printable report. Thin: parse, call a service or selector, render.
"""

from __future__ import annotations

import csv
from datetime import date

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.permissions import Action, can, council_seats, is_council, teams_for
from apps.core.htmx import render_page_or_fragment
from apps.costs import selectors as costs_selectors
from apps.notifications.services import unread_count
from apps.prompts.selectors import prompt_by_pk
from apps.rag.selectors import collection_visible
from apps.reviews import conditions as predicates
from apps.reviews import forms, linking, panels, questionnaire, reports, rules, selectors, services, workflow
from apps.reviews.models import (
    Condition,
    LifecycleStage,
    State,
    TierChange,
    VoteDecision,
)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{_field_label(field)}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
                        for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def _filters(request) -> selectors.UseCaseFilters:
    get = request.GET
    return selectors.UseCaseFilters(q=get.get("q", "").strip()[:100], state=get.get("state", ""),
                                    tier=get.get("tier", ""), team=get.get("team", ""))


@login_required
def use_case_list(request):
    filters = _filters(request)
    use_cases = selectors.use_case_list(actor=request.user, filters=filters)
    if request.GET.get("format") == "csv":
        return _csv(use_cases)
    page = Paginator(use_cases, 50).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in vars(filters).items() if v)
    visible = selectors.use_case_list(actor=request.user)
    by_state = dict(visible.order_by().values_list("state").annotate(n=Count("pk")))
    by_tier = dict(visible.exclude(tier="").order_by().values_list("tier").annotate(n=Count("pk")))
    context = {
        "by_state": [(value, label, by_state[value]) for value, label in State.choices if value in by_state],
        "by_tier": [(t, rules.TIER_LABELS[t], by_tier[t]) for t in rules.TIER_ORDER if t in by_tier],
        "page": page, "filters": filters, "query": query, "states": State.choices,
        "tiers": [(t, rules.TIER_LABELS[t]) for t in rules.TIER_ORDER],
        "teams": teams_for(request.user, Action.VIEW),
        "queue": selectors.vote_queue(user=request.user),
        "unread": unread_count(request.user),
        "may_create": teams_for(request.user, Action.CHANGE).exists(),
        "pending_tier_changes": selectors.pending_tier_changes() if "legal" in council_seats(request.user) else [],
    }
    context["columns"] = panels.register_columns(use_case_ids=[u.pk for u in page.object_list], user=request.user)
    for u in page.object_list:  # each registered column's cell (html) of this row, in column order
        u.register_cells = [column["cells"].get(u.pk, "") for column in context["columns"]]
    response = render_page_or_fragment(request, "reviews/list.html", context, "results")
    response["Vary"] = "HX-Request"
    return response


def _csv(use_cases) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="use-case-register.csv"'
    writer = csv.writer(response)
    writer.writerow(["id", "title", "team", "state", "tier", "business_owner", "accountable_executive",
                     "lifecycle_stage", "submitted_at", "approved_at", "expires_at", "required_controls"])
    for u in use_cases:
        writer.writerow([u.pk, _cell(u.title), u.team.name, u.state, u.tier,
                         u.business_owner.get_username() if u.business_owner else "", _cell(u.accountable_executive),
                         u.lifecycle_stage, u.submitted_at.isoformat() if u.submitted_at else "",
                         u.approved_at.isoformat() if u.approved_at else "",
                         u.expires_at.isoformat() if u.expires_at else "", " ".join(u.required_controls or [])])
    return response


def _cell(text: str) -> str:
    """Neutralise spreadsheet formulas in exported text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --- intake -----------------------------------------------------------------------------------------------


def _questions_context(answers: dict, errors: dict | None = None) -> dict:
    current = selectors.questionnaire_current()
    sections = []
    for section in current.sections:
        rows = []
        for q in section.get("questions", []):
            value = answers.get(q["id"])
            rows.append({"q": q, "visible": questionnaire.is_visible(q, answers), "value": value,
                         "values": value if isinstance(value, list) else [value],
                         "text": "" if value is None else ("true" if value is True else "false" if value is False
                                                           else str(value)),
                         "errors": (errors or {}).get(q["id"], [])})
        sections.append({"title": section["title"], "rows": rows})
    return {"sections": sections, "questionnaire_version": current.version}


@login_required
def intake_questions(request):
    """The htmx fragment that re-renders the questions as answers change (progressive disclosure)."""
    form = forms.IntakeForm(request.POST if request.method == "POST" else request.GET)
    context = _questions_context(form.loose_answers())
    response = render(request, "reviews/partials/_questions.html", context)
    response["Vary"] = "HX-Request"
    return response


HEADER_LABELS = {"team": "Owning team", "title": "Title", "purpose": "Purpose", "intended_uses": "Intended uses",
                 "accountable_executive": "Accountable executive", "lifecycle_stage": "Lifecycle stage"}
HEADER_ANCHORS = {"team": "f-team", "title": "f-title", "purpose": "f-purpose", "intended_uses": "f-uses",
                  "accountable_executive": "f-exec", "lifecycle_stage": "f-stage"}


def _field_label(field: str) -> str:
    """The words the person saw next to the field (a question's label, not its id)."""
    if field in HEADER_LABELS:
        return HEADER_LABELS[field]
    q = selectors.questionnaire_current().question(field)
    return q["label"] if q else field.replace("_", " ").capitalize()


def _error_summary(errors: dict) -> list[dict]:
    """Every error, in the order of the form, each naming its question and linking to it."""
    order = list(HEADER_LABELS) + [q["id"] for q in selectors.questionnaire_current().questions]
    fields = sorted((f for f in errors if f != "__all__"), key=lambda f: order.index(f) if f in order else len(order))
    return [{"field": f, "label": _field_label(f), "messages": errors[f],
             "anchor": HEADER_ANCHORS.get(f, f"q-{f}")} for f in fields]


def _intake_page(request, *, header, answers, errors, use_case=None, teams=None, submitting=False, team=""):
    context = {"teams": teams, "header": header, "errors": errors, "non_field_errors": errors.get("__all__", []),
               "error_summary": _error_summary(errors), "submitting": submitting, "stages": LifecycleStage.choices,
               "selected_team": team, "use_case": use_case, **_questions_context(answers, errors)}
    return render(request, "reviews/intake.html", context, status=422 if errors else 200)


def _intake_form_page(request, form: forms.IntakeForm, *, use_case=None, teams=None):
    """The intake again, as typed, with every error next to its field or question (status 422)."""
    return _intake_page(request, header=form.header(), answers=form.loose_answers(), errors=form.error_dict(),
                        use_case=use_case, teams=teams, submitting=form.submitting,
                        team=str(form["team"].value() or "") if "team" in form.fields else "")


def _errors_of(exc: ValidationError) -> dict:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


def _saved(request, use_case, *, submitted: bool, saved: str):
    """After a successful save (and submit) of the intake: say what happened, open the use case."""
    if submitted:
        messages.success(request, f"Submitted. Tier: {use_case.tier_label}; state: {use_case.state_label}.")
    else:
        messages.success(request, saved)
    return redirect(use_case.get_absolute_url())


@login_required
def use_case_create(request):
    teams = teams_for(request.user, Action.CHANGE)
    if not teams.exists():
        raise PermissionDenied("You are not an engineer or owner of any team, so you cannot propose use cases.")
    if request.method != "POST":
        return _intake_page(request, header={"lifecycle_stage": LifecycleStage.IDEA}, answers={}, errors={},
                            teams=teams)
    form = forms.IntakeForm(request.POST, teams=teams)
    if form.is_valid():
        try:
            use_case = services.use_case_create(team=form.cleaned_data["team"], actor=request.user,
                                                answers=form.answers(), submit=form.submitting, **form.header())
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            return _saved(request, use_case, submitted=form.submitting,
                          saved="Draft saved. Submit it when the answers are complete.")
    return _intake_form_page(request, form, teams=teams)


@login_required
def use_case_edit(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk, action=Action.CHANGE)
    if request.method != "POST":
        header = {name: getattr(use_case, name) for name in services.HEADER_FIELDS}
        return _intake_page(request, header=header, answers=use_case.answers, errors={}, use_case=use_case)
    form = forms.IntakeForm(request.POST)
    if form.is_valid():
        try:
            use_case = services.use_case_update(use_case=use_case, actor=request.user, answers=form.answers(),
                                                submit=form.submitting, **form.header())
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            return _saved(request, use_case, submitted=form.submitting, saved="Saved.")
    return _intake_form_page(request, form, use_case=use_case)


def _submit_and_redirect(request, use_case):
    """The page's Submit button: incomplete answers open the form with every error next to its question."""
    try:
        use_case = services.use_case_submit(use_case=use_case, actor=request.user)
    except ValidationError as exc:
        if selectors.is_editable(use_case) and hasattr(exc, "error_dict"):
            header = {name: getattr(use_case, name) for name in services.HEADER_FIELDS}
            return _intake_page(request, header=header, answers=use_case.answers, errors=_errors_of(exc),
                                use_case=use_case, submitting=True)
        messages.error(request, "Not submitted — " + _error_text(exc))
        return redirect(use_case.get_absolute_url())
    messages.success(request, f"Submitted. Tier: {use_case.tier_label}; state: {use_case.state_label}.")
    return redirect(use_case.get_absolute_url())


@login_required
@require_POST
def use_case_submit(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk, action=Action.CHANGE)
    return _submit_and_redirect(request, use_case)


# --- the use-case page -------------------------------------------------------------------------------------


@login_required
def use_case_detail(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _detail_page(request, use_case)


def _detail_page(request, use_case, *, status: int = 200, **forms_):
    """The use-case page; a form that failed comes back bound, its errors next to its fields (status 422)."""
    user = request.user
    context = reports.report_context(use_case)
    controls = context["controls"]
    context.update({
        "may_change": can(user, Action.CHANGE, use_case),
        "editable": selectors.is_editable(use_case),
        "may_submit": workflow.may(user, "submit", use_case),
        "may_vote": selectors.may_vote(user, use_case),
        "is_reviewer": selectors.is_reviewer(user, use_case),
        "may_waive": selectors.may_waive(user, use_case),
        "is_legal": "legal" in council_seats(user),
        "actions": workflow.available(user, use_case),
        "vote_decisions": VoteDecision.choices,
        "my_seats": sorted(council_seats(user)),
        "tiers": [(t, rules.TIER_LABELS[t]) for t in rules.TIER_ORDER],
        "predicates": predicates.predicates(),
        "blockers": [c for c in controls if c["blocks_activation"]],
        "condition_owner_choices": _people_choices(),
        "today": date.today().isoformat(),
        "linkable_prompts": selectors.linkable_prompts(user=user, use_case=use_case)
        if can(user, Action.CHANGE, use_case) else [],
        "linkable_collections": selectors.linkable_collections(user=user, use_case=use_case)
        if can(user, Action.CHANGE, use_case) else [],
        "eval_runs": selectors.eval_runs(user=user, use_case=use_case),
        "panels": panels.use_case_panels(use_case=use_case, user=user),
        "cache_saved": costs_selectors.use_case_cache_savings(actor=user, use_case_ids=[use_case.pk]).get(use_case.pk),
        "diff": selectors.submission_diff(use_case),
        "vote_form": forms_.get("vote_form") or forms.VoteForm(),
        "condition_form": forms_.get("condition_form") or forms.ConditionForm(
            controls=controls, initial={"owner": use_case.business_owner_id, "due_date": date.today()}),
        "waiver_form": forms_.get("waiver_form") or forms.WaiverForm(),
        "transition_form": forms_.get("transition_form") or forms.TransitionForm(),
        "tier_form": forms_.get("tier_form") or forms.TierChangeForm(initial={"to_tier": use_case.tier}),
        "evidence_form": forms_.get("evidence_form") or forms.EvidenceForm(),
        "comment_form": forms_.get("comment_form") or forms.CommentForm(),
        "prompt_link_form": forms_.get("prompt_link_form") or forms.LinkForm(target="prompt"),
        "collection_link_form": forms_.get("collection_link_form") or forms.LinkForm(target="collection"),
    })
    context["link_forms"] = [context["prompt_link_form"], context["collection_link_form"]]
    return render(request, "reviews/detail.html", context, status=status)


def _form_action(request, use_case, form, fn, success: str, form_name: str):
    """Valid form → service → back to the page with a message; a refusal → the page with the errors in place."""
    if form.is_valid():
        try:
            fn(form)
        except ValidationError as exc:
            if not hasattr(exc, "error_dict"):  # about the use case, not a field (state, already voted): a message
                messages.error(request, _error_text(exc))
                return redirect(use_case.get_absolute_url())
            form.apply_errors(exc)
        except PermissionDenied as exc:
            messages.error(request, str(exc) or "You may not do this.")
            return redirect(use_case.get_absolute_url())
        else:
            messages.success(request, success)
            return redirect(use_case.get_absolute_url())
    use_case.refresh_from_db()
    return _detail_page(request, use_case, status=422, **{form_name: form})


def _people_choices():
    return get_user_model().objects.filter(is_active=True).order_by("username").only("pk", "username")[:500]


def _act(request, use_case, fn, success: str):
    """Run a service; show its refusal as a message; back to the use-case page."""
    try:
        fn()
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    except PermissionDenied as exc:
        messages.error(request, str(exc) or "You may not do this.")
    else:
        messages.success(request, success)
    return redirect(use_case.get_absolute_url())


@login_required
@require_POST
def use_case_vote(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _form_action(request, use_case, forms.VoteForm(request.POST), lambda f: services.vote_cast(
        use_case=use_case, user=request.user, decision=f.cleaned_data["decision"],
        rationale=f.cleaned_data["rationale"], seat=f.cleaned_data["seat"] or None), "Vote recorded.", "vote_form")


def _refused(request, use_case, form):
    """A button's form that did not parse (tampered or stale page): say so, change nothing."""
    messages.error(request, " ".join(m for field in form.errors.values() for m in field))
    return redirect(use_case.get_absolute_url())


@login_required
@require_POST
def use_case_transition(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    form = forms.TransitionForm(request.POST)
    label = workflow.TRANSITIONS[form.cleaned_data["name"]].label if form.is_valid() else ""
    return _form_action(request, use_case, form, lambda f: services.use_case_transition(
        use_case=use_case, actor=request.user, name=f.cleaned_data["name"], note=f.cleaned_data["note"]),
        f"{label}: done.", "transition_form")


@login_required
@require_POST
def use_case_tier(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _form_action(request, use_case, forms.TierChangeForm(request.POST), lambda f: services.tier_change(
        use_case=use_case, actor=request.user, to_tier=f.cleaned_data["to_tier"],
        justification=f.cleaned_data["justification"]), "Tier change recorded.", "tier_form")


@login_required
@require_POST
def tier_change_decide(request, pk: int, change_id: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    change = get_object_or_404(TierChange, pk=change_id, use_case=use_case)
    form = forms.TierDecisionForm(request.POST)
    if not form.is_valid():
        return _refused(request, use_case, form)
    return _act(request, use_case, lambda: services.tier_change_decide(change=change, user=request.user,
                                                                        approve=form.approved),
                "Lower tier signed off." if form.approved else "Lower tier refused.")


@login_required
@require_POST
def rejection_confirm(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _act(request, use_case, lambda: services.rejection_confirm(use_case=use_case, user=request.user),
                "Rejection confirmed.")


@login_required
@require_POST
def condition_add(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    form = forms.ConditionForm(request.POST, controls=selectors.controls_status(use_case))
    return _form_action(request, use_case, form, lambda f: services.condition_add(
        use_case=use_case, actor=request.user, title=f.cleaned_data["title"], owner=f.cleaned_data["owner"],
        due_date=f.cleaned_data["due_date"], how_met=f.cleaned_data["how_met"], kind=f.cleaned_data["kind"],
        predicate=f.cleaned_data["predicate"], params=f.params(), control=f.cleaned_data["control"]),
        "Condition set.", "condition_form")


@login_required
@require_POST
def control_waive(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _form_action(request, use_case, forms.WaiverForm(request.POST), lambda f: services.control_waive(
        use_case=use_case, user=request.user, control=f.cleaned_data["control"], reason=f.cleaned_data["reason"]),
        "Control waived.", "waiver_form")


def _condition(request, pk: int, condition_id: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return use_case, get_object_or_404(Condition, pk=condition_id, use_case=use_case)


@login_required
@require_POST
def condition_check(request, pk: int, condition_id: int):
    use_case, condition = _condition(request, pk, condition_id)
    if not (can(request.user, Action.CHANGE, use_case) or is_council(request.user)):
        raise PermissionDenied("Only the team and the council re-check conditions.")
    return _act(request, use_case, lambda: services.condition_check(condition=condition), "Checked.")


@login_required
@require_POST
def condition_evidence(request, pk: int, condition_id: int):
    use_case, condition = _condition(request, pk, condition_id)
    form = forms.EvidenceForm(request.POST, request.FILES, condition_id=condition.pk)
    return _form_action(request, use_case, form, lambda f: services.condition_evidence_submit(
        condition=condition, actor=request.user, url=f.cleaned_data["url"], file=f.cleaned_data["file"],
        note=f.cleaned_data["note"]), "Evidence submitted for acceptance.", "evidence_form")


@login_required
def condition_evidence_file(request, pk: int, condition_id: int):
    """Evidence files are served only to people who may see the use case, always as a download."""
    _, condition = _condition(request, pk, condition_id)
    if not condition.evidence_file:
        raise Http404("No evidence file.")
    try:
        handle = condition.evidence_file.open("rb")
    except FileNotFoundError:
        raise Http404("The evidence file is missing from storage.") from None
    return FileResponse(handle, as_attachment=True, filename=condition.evidence_file.name.rsplit("/", 1)[-1])


@login_required
@require_POST
def condition_accept(request, pk: int, condition_id: int):
    use_case, condition = _condition(request, pk, condition_id)
    return _act(request, use_case, lambda: services.condition_accept(condition=condition, user=request.user),
                "Evidence accepted.")


@login_required
@require_POST
def comment_add(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _form_action(request, use_case, forms.CommentForm(request.POST), lambda f: services.comment_add(
        use_case=use_case, user=request.user, body=f.cleaned_data["body"]), "Comment added.", "comment_form")


def _link_action(request, use_case, form, *, find, link, unlink):
    """Link the chosen prompt or collection (`find(pk)` → it, or None when the person may not see it), or unlink
    one; a bad or unknown choice comes back next to the select."""
    if form.is_valid() and form.cleaned_data["unlink"]:
        return _act(request, use_case, lambda: unlink(form.cleaned_data["unlink"]), "Unlinked.")
    target = find(form.cleaned_data[form.target]) if form.is_valid() else None
    if form.is_valid() and target is None:
        form.not_found()
    return _form_action(request, use_case, form, lambda f: link(target),
                        f"Linked {target.name}." if target is not None else "", f"{form.target}_link_form")


@login_required
@require_POST
def prompt_link(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _link_action(
        request, use_case, forms.LinkForm(request.POST, target="prompt"),
        find=lambda prompt_id: prompt_by_pk(pk=prompt_id),
        link=lambda prompt: linking.prompt_link(use_case=use_case, actor=request.user, prompt=prompt),
        unlink=lambda prompt_id: linking.prompt_unlink(use_case=use_case, actor=request.user, prompt_id=prompt_id))


@login_required
@require_POST
def collection_link(request, pk: int):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    return _link_action(
        request, use_case, forms.LinkForm(request.POST, target="collection"),
        find=lambda collection_id: collection_visible(actor=request.user, pk=collection_id),
        link=lambda collection: linking.collection_link(use_case=use_case, actor=request.user,
                                                         collection=collection),
        unlink=lambda collection_id: linking.collection_unlink(use_case=use_case, actor=request.user,
                                                                collection_id=collection_id))


# --- report ---------------------------------------------------------------------------------------------------


@login_required
def use_case_report(request, pk: int, fmt: str = "html"):
    use_case = selectors.use_case_get(actor=request.user, pk=pk)
    context = reports.report_context(use_case)
    if fmt == "json":
        response = JsonResponse(reports.report_json(context), json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="use-case-{use_case.pk}-risk-assessment.json"'
        return response
    if fmt == "md":
        response = HttpResponse(reports.report_markdown(context), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="use-case-{use_case.pk}-risk-assessment.md"'
        return response
    return render(request, "reviews/report.html", context)


@login_required
def questionnaire_view(request):
    current = selectors.questionnaire_current()
    return JsonResponse({"version": current.version, "json_schema": questionnaire.json_schema(current)},
                        json_dumps_params={"indent": 2})

