"""The four switches of apps/incidents/switches.py on live calls: through the real gateway with the official openai
SDK against the stand-in upstream, and through the portal's own call path (apps.llm.calls, rag's retrieval and
answers, the prompt catalog's resolve); before: served as usual; after: rerouted / refused / filtered / rolled
back; after undo: as before. No waiting: each switch moves the stamp its lower app reads on commit."""

from datetime import timedelta
from types import SimpleNamespace

import openai
import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from openai import OpenAI

from apps.audit.models import AuditEvent
from apps.costs.models import CallStatus, UsageEvent
from apps.costs.services import UsageContext
from apps.incidents import mitigations, selectors
from apps.incidents.models import EventKind
from apps.incidents.switches import reroutes_now
from apps.llm import calls
from apps.llm.aliases import alias_create, deployment_create
from apps.llm.models import Model
from apps.llm.services import catalog_seed_local
from apps.llm.switches import CallBlocked, CallRefused
from apps.prompts.content import Draft
from apps.prompts.models import PRODUCTION, Label
from apps.prompts.playground import execute_run, prepare_runs
from apps.prompts.resolve import resolve_cached
from apps.prompts.services import label_move_now, prompt_create, version_create
from apps.rag.answers import answer_question
from apps.rag.retrieval import retrieve
from apps.rag.services import collection_create
from apps.reviews.linking import collection_link, collection_unlink
from apps.reviews.models import State, UseCase, UseCaseCollection, UseCasePrompt
from tests.support.standin import standin_model, standin_provider

ASK = [{"role": "user", "content": "Question: how long do refunds take?"}]
EMAIL = "jane.doe" + "@acme-corp.com"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def catalog(llm_standin, db):
    """Two catalog models on the stand-in told apart by the remote name it receives, and the alias "support" on
    the small one."""
    provider = standin_provider(llm_standin)
    small = standin_model(provider, "support-small", remote_name="standin-small")
    standin_model(provider, "support-large", remote_name="standin-large")
    deployment_create(alias=alias_create(name="support", kind="chat"), model=small)
    return llm_standin.standin


@pytest.fixture
def upstream(gateway_url, catalog, settings):
    """The catalog, committed, for a real gateway; guards and guardrail policies asked on every request."""
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 0
    return catalog


@pytest.fixture
def sdk_on_support(upstream, gateway_url, gateway_key):
    """(key, the official SDK on the real gateway with that key)."""
    key, secret = gateway_key()
    return key, OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)


def _sent(upstream) -> str:
    return upstream.requests[-1]["model"]


def _portal_call(model="support"):
    return calls.chat(model=model, messages=ASK, context=UsageContext(source="playground", feature="incident-test"))


def _apply(incident, actor, kind, target, **params):
    return mitigations.mitigation_apply(incident=incident, actor=actor, kind=kind, target=target, params=params,
                                        reason="Checking the switch.")


def test_model_fallback_reroutes_the_gateway_and_the_portal_and_undo_restores(sdk_on_support, upstream, incident,
                                                                              engineer):
    _key, sdk = sdk_on_support
    sdk.chat.completions.create(model="support", messages=ASK)
    assert _sent(upstream) == "standin-small"

    mitigation = _apply(incident, engineer, "model_fallback", {"scope": "alias", "name": "support"},
                        to="support-large")
    sdk.chat.completions.create(model="support", messages=ASK)
    assert _sent(upstream) == "standin-large"
    _portal_call()
    assert _sent(upstream) == "standin-large"
    _portal_call(Model.objects.get(name="support-small"))  # a catalog model handed in directly is not rerouted
    assert _sent(upstream) == "standin-small"

    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    sdk.chat.completions.create(model="support", messages=ASK)
    assert _sent(upstream) == "standin-small"
    _portal_call()
    assert _sent(upstream) == "standin-small"

    # A deployment left out of its alias, replaced by the one chosen (a deployment of another alias).
    other = deployment_create(alias=alias_create(name="support-b", kind="chat"),
                              model=Model.objects.get(name="support-large"))
    skipped = Model.objects.get(name="support-small").deployments.get()
    mitigation = _apply(incident, engineer, "model_fallback", {"scope": "deployment", "deployment_id": skipped.pk},
                        to_deployment_id=other.pk)
    assert mitigation.target_label == f"deployment support/support-small (#{skipped.pk})"
    sdk.chat.completions.create(model="support", messages=ASK)
    assert _sent(upstream) == "standin-large"
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    sdk.chat.completions.create(model="support", messages=ASK)
    assert _sent(upstream) == "standin-small"


def test_stricter_filters_block_pii_at_the_gateway_and_undo_lets_it_pass(sdk_on_support, upstream, incident,
                                                                         engineer):
    key, sdk = sdk_on_support
    mail = [{"role": "user", "content": f"Question: please write to {EMAIL} about the refund"}]
    sdk.chat.completions.create(model="support", messages=mail)
    assert EMAIL in str(upstream.requests[-1])

    mitigation = _apply(incident, engineer, "stricter_filters", {"scope": "feature", "team_id": key.team_id,
                                                                 "feature": key.feature}, guard_input_pii="block")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="support", messages=mail)
    assert caught.value.code == "content_policy_violation"

    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert sdk.chat.completions.create(model="support", messages=mail).choices


@pytest.fixture
def refund_case(upstream, gateway_url, gateway_key, team, engineer, handbook):
    """The use case "Refund helper" with its gateway key (the SDK on the real gateway), its prompt
    support/refund-policy-qa and the handbook collection, both linked to it."""
    use_case = UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE)
    key, secret = gateway_key(use_case_id=use_case.pk)
    prompt = _refund_prompt(team, engineer)
    UseCasePrompt.objects.create(use_case=use_case, prompt=prompt)
    UseCaseCollection.objects.create(use_case=use_case, collection=handbook)
    return SimpleNamespace(use_case=use_case, key=key, prompt=prompt, handbook=handbook,
                           sdk=OpenAI(base_url=gateway_url, api_key=secret, max_retries=0))


def _playground(case, user, question="how long do refunds take?"):
    """One playground run of the prompt's production version (the portal's own call, as the page makes it)."""
    prepared = prepare_runs(versions=[case.prompt.versions.get(number=2)], models=["support"],
                            inputs={"question": question}, user=user)
    return execute_run(prepared.runs[0])


def _rag_answer(case, user):
    retrieval = retrieve(collection=case.handbook, query="refund window", actor=user)
    return answer_question(collection=case.handbook, retrieval=retrieval, user=user)


def test_stricter_filters_on_a_use_case_act_on_its_key_and_its_prompt_in_the_playground_until_undone(
        refund_case, upstream, incident, engineer):
    case, mail = refund_case, [{"role": "user", "content": f"Question: please write to {EMAIL} about the refund"}]
    question = f"please write to {EMAIL} about the refund"
    assert _playground(case, engineer, question).status == "ok" and EMAIL in str(upstream.requests[-1])

    mitigation = _apply(incident, engineer, "stricter_filters", {"scope": "use_case", "use_case_id": case.use_case.pk},
                        guard_input_pii="block")
    with pytest.raises(openai.BadRequestError) as caught:
        case.sdk.chat.completions.create(model="support", messages=mail)
    assert caught.value.code == "content_policy_violation"
    sent = len(upstream.requests)
    run = _playground(case, engineer, question)
    assert run.status == "error" and "personal data or secrets in the input" in run.error
    assert len(upstream.requests) == sent  # refused before the provider saw it
    blocked = UsageEvent.objects.get(request_id=run.request_id)
    assert (blocked.status, blocked.error_type) == (CallStatus.REFUSED, "content_policy_violation")
    assert [(a["check"], a["action"], sum(a["kinds"].values())) for a in blocked.guardrail_actions] == \
        [("pii", "block", 1)]  # kinds and counts only: never the text
    assert _playground(case, engineer).status == "ok"  # nothing to filter: served

    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert case.sdk.chat.completions.create(model="support", messages=mail).choices
    assert _playground(case, engineer, question).status == "ok" and EMAIL in str(upstream.requests[-1])


def test_stricter_filters_redact_pii_from_a_portal_call_before_the_provider_sees_it(refund_case, upstream,
                                                                                      incident, engineer):
    _apply(incident, engineer, "stricter_filters", {"scope": "prompt", "prompt_id": refund_case.prompt.pk},
           guard_input_pii="redact")
    assert _playground(refund_case, engineer, f"please write to {EMAIL}").status == "ok"
    assert EMAIL not in str(upstream.requests[-1]) and "[EMAIL]" in str(upstream.requests[-1])


def test_stricter_output_filters_redact_a_portal_answer_plain_or_streamed_block_it_and_undo_lets_it_pass(
        catalog, incident, engineer, team, django_capture_on_commit_callbacks):
    catalog.control({"reply": f"Write to {EMAIL} today.", "chunk_chars": 5})  # the address split across deltas
    target = {"scope": "feature", "team_id": team.pk, "feature": "refund-bot"}

    def context():
        return UsageContext(source="playground", team_id=team.pk, feature="refund-bot")

    with django_capture_on_commit_callbacks(execute=True):  # the stamp moves on commit, as in production
        redact = _apply(incident, engineer, "stricter_filters", target, guard_output="redact")
    assert EMAIL not in calls.chat(model="support", messages=ASK, context=context()).text
    stream = calls.chat_stream(model="support", messages=ASK, context=context())
    assert EMAIL not in "".join(stream) and EMAIL not in stream.result.text

    with django_capture_on_commit_callbacks(execute=True):
        mitigations.mitigation_undo(mitigation=redact, actor=engineer)
        block = _apply(incident, engineer, "stricter_filters", target, guard_output="block")
    with pytest.raises(CallBlocked, match="personal data or secrets in the answer"):
        calls.chat(model="support", messages=ASK, context=context())
    with pytest.raises(CallBlocked):
        calls.chat_stream(model="support", messages=ASK, context=context())
    blocked = UsageEvent.objects.filter(feature="refund-bot").order_by("-id")[:2]
    assert [(e.status, [a["action"] for a in e.guardrail_actions]) for e in blocked] == [("ok", ["block"])] * 2
    assert selectors.effects_of([block])[block.pk].count == 2  # what the switch did: 2 filtered

    with django_capture_on_commit_callbacks(execute=True):
        mitigations.mitigation_undo(mitigation=block, actor=engineer)
    assert EMAIL in calls.chat(model="support", messages=ASK, context=context()).text


def test_feature_off_on_a_use_case_refuses_its_key_its_playground_runs_and_its_rag_answers_until_undone(
        refund_case, upstream, incident, engineer, drain):
    case = refund_case
    assert case.sdk.chat.completions.create(model="support", messages=ASK).choices
    assert _playground(case, engineer).status == "ok"
    assert _rag_answer(case, engineer).text

    mitigation = _apply(incident, engineer, "feature_off", {"scope": "use_case", "use_case_id": case.use_case.pk},
                        message="Refund answers are paused for now.")
    with pytest.raises(openai.APIStatusError) as caught:
        case.sdk.chat.completions.create(model="support", messages=ASK)
    assert caught.value.status_code == 423
    run = _playground(case, engineer)
    assert run.status == "error" and run.error.startswith("Refund answers are paused for now.")
    with pytest.raises(CallRefused, match="^Refund answers are paused for now"):
        _rag_answer(case, engineer)
    drain()
    assert selectors.effects_of([mitigation])[mitigation.pk].count == 3  # the gateway's and the portal's refusals

    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert case.sdk.chat.completions.create(model="support", messages=ASK).choices
    assert _playground(case, engineer).status == "ok"
    assert _rag_answer(case, engineer).text


def test_feature_off_on_a_prompt_refuses_it_in_the_portal_and_by_reference_at_the_gateway_not_plain_key_calls(
        refund_case, incident, engineer):
    def by_reference():
        return refund_case.sdk.chat.completions.create(model="prompt:support/refund-policy-qa", messages=[],
                                                       metadata={"question": "How long?"})

    assert by_reference().choices
    mitigation = _apply(incident, engineer, "feature_off", {"scope": "prompt", "prompt_id": refund_case.prompt.pk})
    assert mitigation.target_label == "prompt support/refund-policy-qa"
    assert _playground(refund_case, engineer).status == "error"
    with pytest.raises(openai.APIStatusError) as refused:
        by_reference()
    assert refused.value.status_code == 423 and f"INC-{incident.pk}" in refused.value.message
    assert refund_case.sdk.chat.completions.create(model="support", messages=ASK).choices  # the key's own calls
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert _playground(refund_case, engineer).status == "ok"
    assert by_reference().choices


def _refund_prompt(team, engineer):
    """support/refund-policy-qa: v1 on support-small, v2 on support-large; production moved v1 → v2."""
    cache.clear()  # cached resolve payloads of earlier runs must not leak in

    def draft(model):
        return Draft(kind="chat", messages=[{"role": "user", "content": "Question: {{ question }}"}],
                     config={"model": model})

    prompt = prompt_create(team=team, name="support/refund-policy-qa", kind="chat", actor=engineer,
                           draft=draft("support-small"), commit_message="first")
    v2 = version_create(prompt=prompt, draft=draft("support-large"), commit_message="second", actor=engineer).version
    label_move_now(prompt=prompt, version=prompt.versions.get(number=1), actor=engineer, reason="release v1")
    label_move_now(prompt=prompt, version=v2, actor=engineer, reason="release v2")
    return prompt


def test_prompt_rollback_moves_production_back_for_the_gateway_and_the_catalog_and_undo_moves_it_forward(
        upstream, gateway_url, gateway_server, gateway_key, incident, engineer, team):
    prompt = _refund_prompt(team, engineer)
    gateway_server[1].prompts.clear()
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)

    def ask():
        sdk.chat.completions.create(model="prompt:support/refund-policy-qa", messages=[],
                                    metadata={"question": "How long?"})
        return _sent(upstream)

    assert ask() == "standin-large"
    mitigation = _apply(incident, engineer, "prompt_rollback", {"scope": "prompt", "name": prompt.name})
    assert (mitigation.params["from_version"], mitigation.params["to_version"]) == (2, 1)
    assert ask() == "standin-small"
    assert resolve_cached(prompt.name, label=PRODUCTION).version_number == 1  # what the portal's own calls resolve
    moves = AuditEvent.objects.filter(action="prompt.label.move", changes__via="now")
    assert moves.count() == 3  # the two releases and the rollback

    undone = mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert undone.undo_note == "Production is back on v2."
    assert ask() == "standin-large"


def test_undoing_a_rollback_after_someone_moved_production_leaves_it_and_says_why(catalog, incident, engineer, team):
    prompt = _refund_prompt(team, engineer)
    mitigation = _apply(incident, engineer, "prompt_rollback", {"scope": "prompt", "prompt_id": prompt.pk},
                        to_version=1)
    label_move_now(prompt=prompt, version=prompt.versions.get(number=2), actor=engineer, reason="fixed")
    label_move_now(prompt=prompt, version=prompt.versions.get(number=1), actor=engineer, reason="not fixed")
    undone = mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert undone.undo_note.startswith("Production was moved since (now v1, moved by evan-engineer)")
    assert Label.objects.get(prompt=prompt, name=PRODUCTION).version.number == 1
    assert incident.timeline.last().text.endswith("move it on the prompt's page if needed.")


@pytest.fixture
def handbook(team, owner, db):
    catalog_seed_local()
    return collection_create(team=team, name="Handbook", embedding_model=Model.objects.get(name="local-minilm"),
                             answer_model=Model.objects.get(name="local-extractive"), user=owner,
                             retrieval={"mode": "bm25"})  # no query embedding: nothing to load


def test_retrieval_disabled_refuses_or_answers_with_a_disclaimer_and_undo_retrieves_again(
        handbook, incident, engineer, django_capture_on_commit_callbacks):
    assert retrieve(collection=handbook, query="refund window", actor=engineer).offline is None  # cached: "on"

    with django_capture_on_commit_callbacks(execute=True):  # rag's stamp moves on commit, as in production
        refuse = _apply(incident, engineer, "retrieval_disabled",
                        {"scope": "collection", "collection_id": handbook.pk},
                        message="Answers are paused while we check the handbook.")
    off = retrieve(collection=handbook, query="refund window", actor=engineer)
    assert off.hits == [] and off.offline is not None
    answer = answer_question(collection=handbook, retrieval=off, user=engineer)
    assert answer.text.startswith("Answers are paused while we check the handbook.") and answer.model == ""
    with django_capture_on_commit_callbacks(execute=True):
        mitigations.mitigation_undo(mitigation=refuse, actor=engineer)
    assert retrieve(collection=handbook, query="refund window", actor=engineer).offline is None

    with django_capture_on_commit_callbacks(execute=True):
        without = _apply(incident, engineer, "retrieval_disabled",
                         {"scope": "collection", "collection_id": handbook.pk}, answer="without")
    answer = answer_question(collection=handbook, user=engineer,
                             retrieval=retrieve(collection=handbook, query="refund window", actor=engineer))
    assert answer.text.startswith(without.params["message"]) and answer.model == "local-extractive"


def test_each_switch_is_on_the_timeline_and_in_the_audit_log_with_who_and_why(catalog, incident, engineer):
    mitigation = _apply(incident, engineer, "model_fallback", {"scope": "alias", "name": "support"},
                        to="support-large")
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    events = list(incident.timeline.filter(kind__in=(EventKind.MITIGATION, EventKind.MITIGATION_UNDONE)))
    assert [e.text for e in events] == ["Model fallback on alias support (served by support-large): Checking the "
                                        "switch.", "Undone: Model fallback on alias support."]
    assert {e.actor_id for e in events} == {engineer.pk}
    actions = AuditEvent.objects.filter(object_id=str(incident.pk), action__startswith="incident.mitigation")
    assert sorted(actions.values_list("action", flat=True)) == ["incident.mitigation_apply",
                                                                "incident.mitigation_undo"]


@pytest.mark.parametrize(("who", "may"), [
    ("engineer", True),  # an engineer of the incident's team (a responder by role)
    ("council_member", True),
    ("viewer", False),  # a product manager: reads the incident, flips nothing
    ("outsider", False),  # an engineer of another team
])
def test_who_may_flip_a_switch(request, catalog, incident, who, may):
    actor = request.getfixturevalue(who)
    flip = lambda: _apply(incident, actor, "model_fallback", {"scope": "alias", "name": "support"},  # noqa: E731
                          to="support-large")
    if may:
        assert flip().is_active
    else:
        with pytest.raises(PermissionDenied):
            flip()
        assert not incident.mitigations.exists()


def test_a_viewer_named_responder_or_commander_may_flip_and_undo(catalog, incident, viewer, engineer):
    incident.responders.add(viewer)
    mitigation = _apply(incident, viewer, "model_fallback", {"scope": "alias", "name": "support"},
                        to="support-large")
    assert mitigations.mitigation_undo(mitigation=mitigation, actor=viewer).undone_by == viewer


def test_a_responder_flips_model_fallback_from_the_page_and_it_is_switched_now(catalog, client_for, engineer,
                                                                               incident, viewer):
    answer = client_for(engineer).post(reverse("incidents:mitigation_apply", args=[incident.pk]), {
        "kind": "model_fallback", "scope": "alias", "alias": "support", "to": "support-large",
        "reason": "Small model quotes the old refund window.", "expires_in_minutes": 60}, **HTMX)
    assert answer.status_code == 200 and "served by support-large" in answer.content.decode()
    switched = client_for(engineer).get(reverse("incidents:switched")).content.decode()
    assert "alias support" in switched and "Small model quotes the old refund window." in switched

    refused = client_for(viewer).post(reverse("incidents:mitigation_apply", args=[incident.pk]), {
        "kind": "model_fallback", "scope": "alias", "alias": "support", "to": "support-large"})
    assert refused.status_code == 403

    bad = client_for(engineer).post(reverse("incidents:mitigation_apply", args=[incident.pk]), {
        "kind": "model_fallback", "scope": "alias", "alias": "support", "to": "no-such-model"}, **HTMX)
    assert bad.status_code == 400 and "No alias or catalog model named" in bad.content.decode()


def test_the_api_applies_and_undoes_a_switch_and_says_what_could_not_be_undone(catalog, token_for, engineer,
                                                                                incident, team):
    prompt = _refund_prompt(team, engineer)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(engineer, team, 'write')[1]}")
    url = f"/api/v1/incidents/{incident.pk}/mitigations"
    applied = api.post(url, {"kind": "prompt_rollback", "target": {"scope": "prompt", "name": prompt.name}},
                       content_type="application/json")
    assert applied.status_code == 201 and applied.json()["params"]["to_version"] == 1
    label_move_now(prompt=prompt, version=prompt.versions.get(number=2), actor=engineer, reason="fixed")
    undone = api.post(f"{url}/{applied.json()['id']}/undo")
    assert undone.status_code == 200 and undone.json()["note"].startswith("Production was moved since")
    bad = api.post(url, {"kind": "stricter_filters", "target": {"scope": "key", "key_id": 1}, "params": {}},
                   content_type="application/json")
    assert bad.status_code == 422


def test_past_its_expiry_a_fallback_stays_on_and_reminds_once(catalog, incident, engineer):
    mitigation = _apply(incident, engineer, "model_fallback", {"scope": "alias", "name": "support"},
                        to="support-large")
    later = mitigation.expires_at + timedelta(minutes=1)
    assert mitigations.mitigations_expiry_sweep(now=later) == {"restored": 0, "reminded": 1}
    assert mitigations.mitigations_expiry_sweep(now=later) == {"restored": 0, "reminded": 0}
    mitigation.refresh_from_db()
    assert mitigation.is_active and reroutes_now()["support"].to == "support-large"


def test_a_collection_linked_to_a_use_case_whose_retrieval_is_disabled_goes_offline_at_once(
        handbook, incident, engineer, owner, team, django_capture_on_commit_callbacks):
    use_case = UseCase.objects.create(team=team, title="Handbook helper", state=State.ACTIVE)
    with django_capture_on_commit_callbacks(execute=True):
        _apply(incident, engineer, "retrieval_disabled", {"scope": "use_case", "use_case_id": use_case.pk})
    assert retrieve(collection=handbook, query="refund window", actor=engineer).offline is None  # not linked yet

    with django_capture_on_commit_callbacks(execute=True):
        collection_link(use_case=use_case, actor=owner, collection=handbook)
    assert retrieve(collection=handbook, query="refund window", actor=engineer).offline is not None

    with django_capture_on_commit_callbacks(execute=True):
        collection_unlink(use_case=use_case, actor=owner, collection_id=handbook.pk)
    assert retrieve(collection=handbook, query="refund window", actor=engineer).offline is None
