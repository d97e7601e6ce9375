"""Model aliases page: everyone signed in reads (with live breaker states and health), admins add and edit; bad input is
answered next to the field and changes nothing; every change is audited."""

import pytest

from apps.audit.models import AuditEvent
from apps.llm import breakers
from apps.llm.aliases import aliases_seed_local
from apps.llm.models import Deployment, ModelAlias

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_aliases(local_models):
    aliases_seed_local()
    deployments = list(Deployment.objects.all())
    for deployment in deployments:
        breakers.reset(deployment.pk)
    yield {d.alias.name: d for d in deployments}
    for deployment in deployments:
        breakers.reset(deployment.pk)


def test_everyone_signed_in_sees_aliases_deployments_and_breaker_states(client_for, viewer, demo_aliases, settings):
    settings.LLM_BREAKER_MIN_REQUESTS = 2
    chat = demo_aliases["chat"]
    for _ in range(2):  # two failed calls in the window: the chat deployment's breaker opens
        slot = breakers.acquire(_target(chat))
        breakers.release(slot, "fail")

    page = client_for(viewer).get("/models/aliases/")

    body = page.content.decode()
    assert page.status_code == 200
    assert 'data-alias="chat"' in body and 'data-alias="embeddings"' in body
    assert '<span class="badge bad">open</span>' in body and '<span class="badge ok">closed</span>' in body
    assert "/models/aliases/new/" not in body and "Edit</a>" not in body  # a viewer gets no edit links


def test_each_deployments_live_health_is_shown_and_polled_as_a_fragment(client_for, viewer, demo_aliases):
    chat = demo_aliases["chat"]
    for outcome in ("ok", "ok", "ok", "fail"):
        breakers.release(breakers.acquire(_target(chat)), outcome)
    client = client_for(viewer)

    page = client.get("/models/aliases/").content.decode()
    fragment = client.get("/models/aliases/", HTTP_HX_REQUEST="true").content.decode()

    row = page.split('data-deployment="local-extractive"')[1].split("</tr>")[0]
    assert 'data-calls>4<' in row and "25 %" in row and " ms<" in row.split("data-p95>")[1]
    assert 'hx-trigger="every 10s"' in page and "<html" in page
    assert fragment.lstrip().startswith('<div id="aliases-live"') and "<html" not in fragment
    assert "25 %" in fragment


def test_anonymous_visitors_are_sent_to_sign_in(client_for, demo_aliases):
    page = client_for(None).get("/models/aliases/")

    assert page.status_code == 302 and "/login" in page["Location"]


def test_only_admins_may_add_or_change_aliases(client_for, engineer, demo_aliases):
    alias = ModelAlias.objects.get(name="chat")
    deployment = demo_aliases["chat"]
    client = client_for(engineer)

    for url, data in (("/models/aliases/new/", {"name": "x", "kind": "chat"}),
                      (f"/models/aliases/{alias.pk}/edit/", {"strategy": "weighted"}),
                      (f"/models/aliases/{alias.pk}/deployments/new/", {"weight": "1"}),
                      (f"/models/deployments/{deployment.pk}/edit/", {"weight": "5", "priority": "0"})):
        assert client.post(url, data).status_code == 403, url
    assert ModelAlias.objects.count() == 2 and Deployment.objects.get(pk=deployment.pk).weight == 1


def test_an_admin_adds_an_alias_and_a_deployment_and_both_are_audited(client_for, admin_user, local_models):
    client = client_for(admin_user)

    made = client.post("/models/aliases/new/", {"name": "support", "kind": "chat", "strategy": "least_inflight",
                                                "deadline_seconds": "30", "max_attempts": "2", "is_active": "on"})
    alias = ModelAlias.objects.get(name="support")
    added = client.post(f"/models/aliases/{alias.pk}/deployments/new/",
                        {"model": local_models["chat"].pk, "weight": "3", "priority": "0", "is_active": "on"})

    assert made.status_code == 302 and added.status_code == 302
    assert (alias.strategy, alias.deployments.get().weight) == ("least_inflight", 3)
    events = AuditEvent.objects.filter(action__in=["llm.alias.create", "llm.deployment.create"])
    assert sorted(e.action for e in events) == ["llm.alias.create", "llm.deployment.create"]
    assert all(e.actor_user == admin_user for e in events)


def test_bad_input_is_answered_next_to_the_field_and_changes_nothing(client_for, admin_user, demo_aliases):
    client = client_for(admin_user)
    alias = ModelAlias.objects.get(name="chat")

    clash = client.post("/models/aliases/new/", {"name": "local-minilm", "kind": "embedding", "strategy": "weighted",
                                                 "deadline_seconds": "30", "max_attempts": "2"})
    too_long = client.post(f"/models/aliases/{alias.pk}/edit/", {"strategy": "weighted", "deadline_seconds": "9000",
                                                                 "max_attempts": "2"})
    wrong_kind = client.post(f"/models/aliases/{alias.pk}/deployments/new/",
                             {"model": demo_aliases["embeddings"].model.pk, "weight": "1", "priority": "0"})
    negative = client.post(f"/models/deployments/{demo_aliases['chat'].pk}/edit/", {"weight": "-1", "priority": "0"})

    assert "A catalog model has this name" in clash.content.decode() and clash.status_code == 400
    assert "at most 600 seconds" in too_long.content.decode() and too_long.status_code == 400
    assert wrong_kind.status_code == 400 and "Select a valid choice" in wrong_kind.content.decode()
    assert negative.status_code == 400 and "From 0 to 1000" in negative.content.decode()
    assert ModelAlias.objects.count() == 2 and ModelAlias.objects.get(name="chat").deadline_seconds == 60
    assert Deployment.objects.get(pk=demo_aliases["chat"].pk).weight == 1
    assert not AuditEvent.objects.filter(action__in=["llm.alias.update", "llm.deployment.update"]).exists()


def test_an_admin_changes_a_deployments_weight(client_for, admin_user, demo_aliases):
    deployment = demo_aliases["chat"]

    saved = client_for(admin_user).post(f"/models/deployments/{deployment.pk}/edit/",
                                        {"weight": "4", "priority": "1", "max_concurrency": "8", "is_active": "on"})

    deployment.refresh_from_db()
    assert saved.status_code == 302 and (deployment.weight, deployment.priority, deployment.max_concurrency) == (4, 1, 8)
    assert AuditEvent.objects.get(action="llm.deployment.update").changes["weight"] == [1, 4]


def _target(deployment):
    from apps.llm.routing import Target

    return Target(model=deployment.model, deployment_id=deployment.pk, deployment=f"{deployment.alias.name}/x")
