"""Sampled body storage: off by default; a key that opts in keeps its bodies PII-redacted (no raw PII anywhere in
the database), readable by who may read the key's traffic, addable to an eval dataset of its team, swept after
the retention period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from openai import OpenAI

from apps.audit.models import AuditEvent
from apps.costs.models import UsageEvent
from apps.evals.datasets import dataset_create
from apps.evals.models import DatasetItem
from apps.gateway import bodies, services
from apps.gateway.keys import KeyInfo
from apps.gateway.models import GatewayBody
from apps.gateway.tasks import gateway_bodies_sweep_task
from tests.factories import MembershipFactory, UserFactory

EMAIL, CARD = "jane.doe@gmail.com", "4111 1111 1111 1111"
QUESTION = [{"role": "user", "content": f"Refunds take 14 days. Mail {EMAIL} about card {CARD}"}]


def _rows_containing(text: str) -> list[str]:
    """Every table of the database whose rows mention `text` anywhere (each row cast to text)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                       "AND table_type = 'BASE TABLE'")
        tables = [name for (name,) in cursor.fetchall()]
        found = []
        for table in tables:
            cursor.execute(f'SELECT 1 FROM "{table}" t WHERE t::text ILIKE %s LIMIT 1', [f"%{text}%"])
            if cursor.fetchone():
                found.append(table)
    return found


def _call(gateway_url, secret):
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    return sdk.chat.completions.with_raw_response.create(model="local-extractive", messages=QUESTION,
                                                         metadata={"contact": EMAIL})


def test_bodies_are_not_stored_by_default_and_a_key_sampling_all_stores_them_redacted(gateway_url, local_catalog,
                                                                                    gateway_key, drain):
    _key, secret = gateway_key()
    _call(gateway_url, secret)
    drain()
    assert UsageEvent.objects.count() == 1 and not GatewayBody.objects.exists()

    _key, secret = gateway_key(store_bodies=True, body_sample_percent=100)
    request_id = _call(gateway_url, secret).headers["x-portal-request-id"]
    drain()
    body = GatewayBody.objects.get()
    assert body.request_id == request_id
    assert "[EMAIL]" in body.request["messages"][0]["content"] and "[CARD]" in body.request["messages"][0]["content"]
    assert body.request["metadata"] == {"contact": "[EMAIL]"}
    assert body.response["content"] and body.redactions >= 3
    assert _rows_containing(EMAIL) == [] and _rows_containing(CARD) == []  # no raw PII anywhere in the database


def test_the_sample_rate_decides_which_requests_are_kept(team):
    info = KeyInfo(id=1, prefix="pk-gw-x", team_id=team.pk, feature="f", use_case_id=None, allowed_aliases=(),
                   requests_per_minute=None, requests_per_day=None, tokens_per_minute=None, tokens_per_day=None,
                   dollars_per_day=None, expires_at=None, revoked_at=None, overlap_ends_at=None, cache_enabled=False,
                   store_bodies=True, body_sample_percent=0)
    assert not bodies.sampled(info)
    assert bodies.sampled(KeyInfo(**{**info.__dict__, "body_sample_percent": 100}))
    assert not bodies.sampled(KeyInfo(**{**info.__dict__, "store_bodies": False, "body_sample_percent": 100}))


def test_the_sample_rate_is_a_percentage_and_its_change_is_audited(team, owner):
    key = services.gateway_key_create(team=team, name="bot", feature="bot", actor=owner).key
    with pytest.raises(ValidationError, match="0 to 100"):
        services.gateway_key_update(key=key, actor=owner, body_sample_percent=101)
    services.gateway_key_update(key=key, actor=owner, store_bodies=True, body_sample_percent=25)
    key.refresh_from_db()
    assert (key.store_bodies, key.body_sample_percent) == (True, 25)
    assert AuditEvent.objects.filter(action="gateway_key.update").latest("pk").changes["body_sample_percent"] == [100, 25]


# --- reading a stored body and adding it to a dataset (the web pages) -----------------------------------------

@pytest.fixture
def stored(team, owner):
    """A stored body of the team's key, written the way the recorder writer writes it (redacted)."""
    key = services.gateway_key_create(team=team, name="bot", feature="bot", actor=owner, store_bodies=True).key
    payload = (b'{"request_id":"req-1","key_id":%d,"team_id":%d,"model":"chat","prompt":"",'
               b'"occurred_at":"2026-12-06T03:00:00+00:00","request":{"messages":[{"role":"user","content":'
               b'"Mail jane.doe@gmail.com: how long do refunds take?"}],"metadata":{},"parameters":{}},'
               b'"response":{"content":"14 days.","finish_reason":"stop","tool_calls":[]}}' % (key.pk, team.pk))
    assert bodies.samples_write([payload, payload]) == 2  # delivered twice: stored once
    return GatewayBody.objects.get()


@pytest.fixture
def outsider(other_team):
    user = UserFactory(username="sam-search")
    MembershipFactory(team=other_team, user=user, role="owner")
    return user


def test_who_may_read_the_keys_traffic_sees_the_body_and_others_do_not(client, stored, viewer, outsider):
    client.force_login(viewer)
    page = client.get(reverse("gateway:request_detail", args=[stored.request_id]))
    assert page.status_code == 200 and "[EMAIL]" in page.content.decode() and EMAIL not in page.content.decode()
    client.force_login(outsider)
    assert client.get(reverse("gateway:request_detail", args=[stored.request_id])).status_code == 404


def test_an_engineer_of_the_team_adds_a_stored_body_to_a_dataset_with_an_audit_event(client, stored, team, engineer):
    dataset = dataset_create(team=team, name="support/refunds", actor=engineer)
    client.force_login(engineer)
    page = client.get(reverse("gateway:request_detail", args=[stored.request_id]))
    add_url = reverse("evals:from_gateway", args=[stored.request_id])
    assert add_url in page.content.decode()  # the "Add to eval dataset" button (registered by evals)

    answer = client.post(add_url, {"dataset": str(dataset.pk), "expected": "14 days.", "tags": "gateway"})
    assert answer.status_code == 302
    item = DatasetItem.objects.get(dataset=dataset)
    assert item.source == "gateway" and item.expected == "14 days."
    assert "[EMAIL]" in item.inputs["messages"][0]["content"]
    event = AuditEvent.objects.filter(action="eval.dataset.revise").latest("pk")
    assert event.changes["source"] == "gateway" and event.changes["added"] == 1


def test_another_teams_member_may_not_add_the_body_to_a_dataset(client, stored, other_team, outsider):
    dataset = dataset_create(team=other_team, name="search/golden", actor=outsider)
    client.force_login(outsider)
    answer = client.post(reverse("evals:from_gateway", args=[stored.request_id]), {"dataset": str(dataset.pk)})
    assert answer.status_code == 404
    assert not DatasetItem.objects.exists()


def test_a_viewer_gets_no_add_button_and_is_refused(client, stored, team, engineer, viewer):
    dataset_create(team=team, name="support/refunds", actor=engineer)
    client.force_login(viewer)
    page = client.get(reverse("gateway:request_detail", args=[stored.request_id]))
    assert reverse("evals:from_gateway", args=[stored.request_id]) not in page.content.decode()
    assert client.get(reverse("evals:from_gateway", args=[stored.request_id])).status_code == 403


def test_bodies_past_the_retention_are_swept(stored, settings):
    settings.GATEWAY_BODY_RETENTION_DAYS = 30
    GatewayBody.objects.filter(pk=stored.pk).update(occurred_at=timezone.now() - timedelta(days=31))
    services.gateway_key_create(team=stored.team, name="b2", feature="bot", store_bodies=True)
    assert bodies.samples_write([b'{"request_id":"req-2","key_id":%d,"team_id":%d,"model":"chat",'
                                 b'"occurred_at":"%s","request":{},"response":{}}'
                                 % (stored.key_id, stored.team_id, timezone.now().isoformat().encode())]) == 1
    assert gateway_bodies_sweep_task() == 1
    assert list(GatewayBody.objects.values_list("request_id", flat=True)) == ["req-2"]


def test_a_body_that_cannot_be_kept_is_dropped_without_holding_up_the_writer(team):
    unreadable, orphan = b"{not json", (b'{"request_id":"req-9","key_id":999999,"team_id":%d,"model":"chat",'
                                        b'"occurred_at":"2026-12-06T03:00:00+00:00","request":{},"response":{}}'
                                        % team.pk)
    assert bodies.samples_write([unreadable, orphan]) == 0  # unreadable; its key no longer exists
    assert not GatewayBody.objects.exists()
