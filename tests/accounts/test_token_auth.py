"""Bearer tokens on /api/v1/: every refusal is a JSON 401 whose `reason` says what is wrong."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.accounts.models import ApiToken, Membership
from apps.accounts.services import api_token_revoke
from apps.audit.models import AuditEvent

ME = "/api/v1/accounts/me"


def call(client, authorization=None):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return client.get(ME, **extra)


@pytest.fixture
def token(team, engineer, token_for):
    return token_for(engineer, team, "read")


@pytest.mark.django_db
class TestRefusals:
    def assert_refused(self, response, reason, words):
        assert response.status_code == 401
        body = response.json()
        assert body["reason"] == reason
        assert words in body["detail"]
        assert f'error_description="{reason}"' in response["WWW-Authenticate"]

    def test_missing(self, client):
        self.assert_refused(call(client), "missing", "Authorization: Bearer")

    @pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Bearer not-a-portal-token",
                                        "Token gp_0123abcd_aaaaaaaaaaaaaaaaaaaaaaaaaaaa"])
    def test_malformed(self, client, header):
        self.assert_refused(call(client, header), "malformed", "gp_")

    def test_wrong(self, client, token):
        _, secret = token
        tampered = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
        self.assert_refused(call(client, f"Bearer {tampered}"), "unknown", "not valid")

    def test_expired(self, client, token):
        obj, secret = token
        ApiToken.objects.filter(pk=obj.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
        self.assert_refused(call(client, f"Bearer {secret}"), "expired", "expired on")

    def test_revoked(self, client, token):
        obj, secret = token
        api_token_revoke(token=obj)
        self.assert_refused(call(client, f"Bearer {secret}"), "revoked", "revoked on")

    def test_owner_deactivated(self, client, token, engineer):
        _, secret = token
        engineer.is_active = False
        engineer.save(update_fields=["is_active"])
        self.assert_refused(call(client, f"Bearer {secret}"), "inactive", "no longer an active member")

    def test_owner_left_the_team(self, client, token, team, engineer):
        _, secret = token
        Membership.objects.filter(team=team, user=engineer).delete()  # even without the service's revocation
        self.assert_refused(call(client, f"Bearer {secret}"), "inactive", "no longer an active member")

    def test_a_bad_token_is_refused_even_with_a_session(self, client, engineer):
        client.force_login(engineer)
        self.assert_refused(call(client, "Bearer gp_0123abcd_" + "x" * 40), "unknown", "not valid")


@pytest.mark.django_db
def test_a_valid_token_authenticates_and_records_last_use(client, token):
    obj, secret = token
    response = call(client, f"Bearer {secret}")
    assert response.status_code == 200
    assert response.json()["token_scope"] == "read"
    assert ApiToken.objects.get(pk=obj.pk).last_used_at is not None


@pytest.mark.django_db
def test_the_scheme_is_case_insensitive(client, token):
    _, secret = token
    assert call(client, f"bearer {secret}").status_code == 200


@pytest.mark.django_db
def test_last_use_is_not_rewritten_within_a_minute(client, token):
    obj, secret = token
    call(client, f"Bearer {secret}")
    first = ApiToken.objects.get(pk=obj.pk).last_used_at
    call(client, f"Bearer {secret}")
    assert ApiToken.objects.get(pk=obj.pk).last_used_at == first


@pytest.mark.django_db
def test_using_a_token_records_no_audit_event(client, token):
    _, secret = token
    before = AuditEvent.objects.count()
    call(client, f"Bearer {secret}")
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
class TestCachedLookups:
    """A token once used is served from the cache; any change to what the decision reads is seen at once."""

    def warm(self, client, secret):
        assert call(client, f"Bearer {secret}").status_code == 200

    def test_a_warm_call_needs_no_database_query(self, client, token, django_assert_num_queries):
        _, secret = token
        self.warm(client, secret)
        self.warm(client, secret)  # the last-use stamp is written; now nothing is
        with django_assert_num_queries(0):
            assert call(client, f"Bearer {secret}").status_code == 200

    def test_revoking_a_cached_token_refuses_the_next_call(self, client, token):
        obj, secret = token
        self.warm(client, secret)
        api_token_revoke(token=obj)
        assert call(client, f"Bearer {secret}").json()["reason"] == "revoked"

    def test_deactivating_the_owner_refuses_the_next_call(self, client, token, engineer):
        _, secret = token
        self.warm(client, secret)
        engineer.is_active = False
        engineer.save(update_fields=["is_active"])
        assert call(client, f"Bearer {secret}").json()["reason"] == "inactive"

    def test_leaving_the_team_refuses_the_next_call(self, client, token, team, engineer):
        _, secret = token
        self.warm(client, secret)
        Membership.objects.filter(team=team, user=engineer).delete()
        assert call(client, f"Bearer {secret}").json()["reason"] == "inactive"

    def test_a_cached_token_still_expires_on_time(self, client, token, monkeypatch):
        obj, secret = token
        self.warm(client, secret)
        later = obj.expires_at + dt.timedelta(seconds=1)
        monkeypatch.setattr(timezone, "now", lambda: later)
        assert call(client, f"Bearer {secret}").json()["reason"] == "expired"

    def test_a_login_does_not_empty_the_cache(self, client, token, engineer, django_assert_num_queries):
        from django.contrib.auth.signals import user_logged_in

        _, secret = token
        self.warm(client, secret)
        self.warm(client, secret)
        user_logged_in.send(sender=type(engineer), request=None, user=engineer)  # stamps last_login only
        with django_assert_num_queries(0):
            assert call(client, f"Bearer {secret}").status_code == 200
