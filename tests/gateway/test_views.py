"""The gateway pages: who may create, rotate, change and revoke keys; the secret shown once; the request log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.costs.models import CallStatus, Source
from apps.gateway import keys
from apps.gateway.models import GatewayKey
from apps.gateway.services import gateway_key_create
from tests.factories import UsageEventFactory

pytestmark = pytest.mark.django_db

NEW = {"name": "support-bot-prod", "feature": "support-bot", "allowed_aliases": "local-extractive, chat",
       "requests_per_minute": "60"}


def test_the_keys_page_lists_the_teams_keys_for_its_members_only(client_for, team, owner, viewer, outsider):
    key = gateway_key_create(team=team, name="bot", feature="f", actor=owner).key
    page = client_for(viewer).get(reverse("gateway:keys"))
    assert page.status_code == 200 and key.prefix in page.content.decode()
    assert "Create key" not in page.content.decode()  # viewers read, never write
    assert client_for(outsider).get(reverse("gateway:keys"), {"team": team.slug}).status_code == 404
    assert client_for(None).get(reverse("gateway:keys")).status_code == 302


def test_an_engineer_creates_a_key_and_sees_the_secret_once(client_for, team, engineer):
    page = client_for(engineer).post(reverse("gateway:key_create", args=[team.slug]), NEW)
    assert page.status_code == 200 and page["Cache-Control"].startswith("max-age=0")
    key = GatewayKey.objects.get()
    secret = page.context["issued"].secret
    assert key.key_hash == keys.hash_secret(secret) and secret in page.content.decode()
    assert key.allowed_aliases == ["local-extractive", "chat"] and key.requests_per_minute == 60
    assert secret not in client_for(engineer).get(reverse("gateway:keys")).content.decode()
    assert AuditEvent.objects.filter(action="gateway_key.create", object_id=str(key.pk)).exists()


def test_viewers_and_outsiders_cannot_create_keys(client_for, team, viewer, outsider):
    assert client_for(viewer).post(reverse("gateway:key_create", args=[team.slug]), NEW).status_code == 403
    assert client_for(outsider).post(reverse("gateway:key_create", args=[team.slug]), NEW).status_code == 404
    assert not GatewayKey.objects.exists()


def test_bad_input_is_shown_next_to_the_field_and_creates_nothing(client_for, team, owner):
    page = client_for(owner).post(reverse("gateway:key_create", args=[team.slug]),
                                  {**NEW, "feature": "", "allowed_aliases": "bad alias!", "tokens_per_day": "-1"})
    assert page.status_code == 400
    form = page.context["form"]
    assert {"feature", "tokens_per_day"} <= set(form.errors)
    assert not GatewayKey.objects.exists()
    page = client_for(owner).post(reverse("gateway:key_create", args=[team.slug]), {**NEW, "allowed_aliases": "a b!"})
    assert page.status_code == 400 and "allowed_aliases" in page.context["form"].errors


def test_owners_change_limits_and_rotate_engineers_may_not(client_for, team, owner, engineer):
    key = gateway_key_create(team=team, name="bot", feature="f", actor=engineer).key
    url = reverse("gateway:key_detail", args=[key.pk])
    assert client_for(engineer).post(url, {"name": "bot", "tokens_per_minute": "5"}).status_code == 403
    assert client_for(engineer).post(reverse("gateway:key_rotate", args=[key.pk]),
                                     {"overlap_hours": "1"}).status_code == 403
    assert client_for(owner).post(url, {"name": "bot", "tokens_per_minute": "5"}).status_code == 302
    key.refresh_from_db()
    assert key.tokens_per_minute == 5
    assert client_for(owner).post(url, {"name": "bot", "tokens_per_minute": "zero"}).status_code == 400
    rotated = client_for(owner).post(reverse("gateway:key_rotate", args=[key.pk]), {"overlap_hours": "1"})
    assert rotated.status_code == 200 and keys.well_formed(rotated.context["issued"].secret)
    assert [e.action for e in AuditEvent.objects.filter(object_type="gateway.gatewaykey").order_by("id")] == [
        "gateway_key.create", "gateway_key.update", "gateway_key.rotate"]


def test_revoke_by_an_owner_or_the_engineer_who_created_it(client_for, team, owner, engineer, viewer):
    mine = gateway_key_create(team=team, name="mine", feature="f", actor=engineer).key
    theirs = gateway_key_create(team=team, name="theirs", feature="f", actor=owner).key
    assert client_for(viewer).post(reverse("gateway:key_revoke", args=[mine.pk])).status_code == 403
    assert client_for(engineer).post(reverse("gateway:key_revoke", args=[theirs.pk])).status_code == 403
    assert client_for(engineer).post(reverse("gateway:key_revoke", args=[mine.pk])).status_code == 302
    assert client_for(owner).post(reverse("gateway:key_revoke", args=[theirs.pk])).status_code == 302
    assert set(GatewayKey.objects.values_list("revoked_at", flat=True)) != {None}
    assert GatewayKey.objects.filter(revoked_at__isnull=True).count() == 0


def test_the_request_log_shows_the_teams_gateway_calls_filtered(client_for, team, other_team, owner, viewer):
    key = gateway_key_create(team=team, name="bot", feature="f", actor=owner).key
    UsageEventFactory(team=team, source=Source.GATEWAY, gateway_key_id=key.pk, alias="chat", request_id="gw-ok",
                      status=CallStatus.OK, ttft_ms=12, upstream_ms=30)
    UsageEventFactory(team=team, source=Source.GATEWAY, gateway_key_id=key.pk, alias="chat", request_id="gw-err",
                      status=CallStatus.ERROR)
    UsageEventFactory(team=other_team, source=Source.GATEWAY, gateway_key_id=key.pk + 1, request_id="gw-other")
    page = client_for(viewer).get(reverse("gateway:requests")).content.decode()
    assert "gw-ok" in page and "gw-err" in page and "gw-other" not in page
    fragment = client_for(viewer).get(reverse("gateway:requests"), {"status": "error", "key": key.pk},
                                      HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert "gw-err" in body and "gw-ok" not in body and "<html" not in body
    assert client_for(viewer).get(reverse("gateway:requests"), {"day": "yesterday"}).status_code == 400


def test_the_audit_log_links_to_the_key_and_the_team_page_counts_its_keys(client_for, team, owner):
    from apps.audit.links import attach_links

    key = gateway_key_create(team=team, name="bot", feature="f", actor=owner).key
    [event] = attach_links(AuditEvent.objects.filter(action="gateway_key.create"))
    assert event.object_url == reverse("gateway:key_detail", args=[key.pk])
    page = client_for(owner).get(reverse("accounts:team_detail", args=[team.slug])).content.decode()
    assert "Gateway keys (not revoked)" in page
