"""The response cache on the gateway pages: owners set a key's cache policy; the keys page, a key's page and the
request log show the hit rate and what the cache saved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.costs.models import Source
from apps.gateway.models import GatewayKey
from apps.gateway.services import gateway_key_create
from tests.factories import UsageEventFactory

pytestmark = pytest.mark.django_db


def test_owners_set_a_keys_cache_policy_and_a_bad_ttl_changes_nothing(client_for, team, owner, engineer):
    key = gateway_key_create(team=team, name="bot", feature="f", actor=engineer).key
    url = reverse("gateway:key_detail", args=[key.pk])
    policy = {"name": "bot", "cache_enabled": "on", "cache_ttl_seconds": "600", "cache_sampled": "on"}
    assert client_for(engineer).post(url, policy).status_code == 403

    assert client_for(owner).post(url, policy).status_code == 302
    key.refresh_from_db()
    assert (key.cache_enabled, key.cache_ttl_seconds, key.cache_sampled) == (True, 600, True)
    update = AuditEvent.objects.get(action="gateway_key.update")
    assert update.changes["cache_ttl_seconds"] == [None, 600]

    refused = client_for(owner).post(url, {**policy, "cache_ttl_seconds": "999999999"})
    assert refused.status_code == 400 and "cache_ttl_seconds" in refused.context["form"].errors
    assert GatewayKey.objects.get(pk=key.pk).cache_ttl_seconds == 600


def test_the_keys_page_and_the_request_log_show_the_hit_rate_and_the_saving(client_for, team, owner, viewer):
    key = gateway_key_create(team=team, name="bot", feature="f", actor=owner, cache_enabled=True).key
    UsageEventFactory(team=team, source=Source.GATEWAY, gateway_key_id=key.pk, request_id="gw-paid",
                      cost=Decimal("0.002"))
    for n in range(3):
        UsageEventFactory(team=team, source=Source.GATEWAY, gateway_key_id=key.pk, request_id=f"gw-hit-{n}",
                          cost=Decimal(0), cache_hit=True, cache_saving=Decimal("0.002"), input_tokens=0,
                          output_tokens=0)

    keys_page = client_for(viewer).get(reverse("gateway:keys")).content.decode()
    detail = client_for(viewer).get(reverse("gateway:key_detail", args=[key.pk])).content.decode()
    log = client_for(viewer).get(reverse("gateway:requests")).content.decode()

    for page in (keys_page, detail):
        assert "75% hits (3 of 4)" in page and "$0.0060 saved" in page
    assert "<strong>75% hits</strong> (3 of 4 requests) · $0.0060 saved" in log
    assert log.count('<span class="badge ok" title="answered from the response cache') == 3
