"""Issue #12: failed sign-ins and invalid API tokens are throttled by account and by client address.

Policy (ADR 0090): 5 failures lock an account for LOGIN_LOCKOUT_SECONDS (the right password is refused
meanwhile, and attempts during the lock do not extend it); 20 failures from one address block that address;
20 invalid tokens from one address get 429 for API_TOKEN_LOCKOUT_SECONDS. Each block is one audit event.
"""

import time

import pytest

from apps.audit.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD, UserFactory

LOGIN = "/accounts/login/"
ATTACKER = "203.0.113.66"
HOME = "198.51.100.7"


def sign_in(client, username, password, address=ATTACKER):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(response) -> bool:
    return response.status_code == 302


def wait_for_expiry(seconds: float) -> None:
    time.sleep(seconds + 0.2)


@pytest.fixture
def evan(db):
    return UserFactory(username="evan")


@pytest.mark.django_db
class TestSignInThrottle:
    def test_five_wrong_passwords_lock_the_account_and_the_right_one_is_refused(self, client, evan):
        for _ in range(5):
            response = sign_in(client, "evan", "wrong-password")
            assert "did not match" in response.content.decode()
        response = sign_in(client, "evan", DEFAULT_PASSWORD, address=HOME)
        assert not signed_in(response)
        assert "Too many failed sign-ins for this account" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_the_lock_is_one_audit_event_naming_the_account_and_the_address(self, client, evan):
        for _ in range(9):
            sign_in(client, "EVAN", "wrong-password")  # usernames are counted case-insensitively
        events = AuditEvent.objects.filter(action="user.login.lockout")
        assert events.count() == 1
        event = events.get()
        assert event.object_type == "auth.user" and event.object_id == str(evan.pk)
        assert event.changes["failures"] == 5 and event.changes["address"] == ATTACKER
        assert event.ip == ATTACKER

    def test_the_lock_ends_and_the_right_password_then_works(self, client, evan, settings):
        settings.LOGIN_LOCKOUT_SECONDS = 1
        for _ in range(5):
            sign_in(client, "evan", "wrong-password")
        assert not signed_in(sign_in(client, "evan", DEFAULT_PASSWORD))
        sign_in(client, "evan", "wrong-password")  # during the lock: refused, does not extend it
        wait_for_expiry(1)
        assert signed_in(sign_in(client, "evan", DEFAULT_PASSWORD))

    def test_a_success_clears_the_account_counter(self, client, evan):
        for _ in range(4):
            sign_in(client, "evan", "wrong-password")
        assert signed_in(sign_in(client, "evan", DEFAULT_PASSWORD))
        client.logout()
        for _ in range(4):
            sign_in(client, "evan", "wrong-password")
        assert signed_in(sign_in(client, "evan", DEFAULT_PASSWORD))

    def test_one_attacker_address_is_blocked_before_it_can_lock_out_everyone(self, client, db):
        """Spraying one wrong password over many accounts: after 20 failures the address is blocked, the
        accounts it tried are not locked, and their owners sign in from their own addresses."""
        people = [UserFactory(username=f"person{i}") for i in range(25)]
        for person in people[:20]:
            assert "did not match" in sign_in(client, person.username, "Winter2026!").content.decode()
        response = sign_in(client, people[20].username, DEFAULT_PASSWORD)  # even a right password
        assert not signed_in(response)
        assert "Too many failed sign-ins from your network address" in response.content.decode()
        assert AuditEvent.objects.filter(action="login.address.throttle", object_repr=ATTACKER).count() == 1
        assert not AuditEvent.objects.filter(action="user.login.lockout").exists()
        for person in (people[0], people[19], people[24]):
            assert signed_in(sign_in(client, person.username, DEFAULT_PASSWORD, address=HOME))
            client.logout()

    def test_a_locked_account_does_not_stop_other_people(self, client, evan):
        pat = UserFactory(username="pat")
        for _ in range(5):
            sign_in(client, "evan", "wrong-password")
        assert signed_in(sign_in(client, pat.username, DEFAULT_PASSWORD, address=HOME))

    def test_the_admin_login_is_throttled_too(self, client, db):
        UserFactory(username="ada", is_staff=True, is_superuser=True)
        for _ in range(5):
            client.post("/admin/login/", {"username": "ada", "password": "wrong-password"}, REMOTE_ADDR=ATTACKER)
        response = client.post("/admin/login/?next=/admin/", {"username": "ada", "password": DEFAULT_PASSWORD},
                               REMOTE_ADDR=HOME)
        assert response.status_code == 200
        assert "Too many failed sign-ins for this account" in response.content.decode()


@pytest.mark.django_db
class TestTokenThrottle:
    API = "/api/v1/prompts"

    def call(self, client, raw, address=ATTACKER):
        return client.get(self.API, HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR=address)

    def test_twenty_invalid_tokens_get_429_with_retry_after_and_the_api_error_shape(self, client, engineer, team,
                                                                                       token_for):
        _token, secret = token_for(engineer, team)
        for i in range(20):
            assert self.call(client, f"gp_deadbeef_not-a-real-secret-{i:04d}xxxxxx").status_code == 401
        response = self.call(client, secret)  # a valid token from that address waits too
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 300
        body = response.json()
        assert body["reason"] == "throttled" and "Too many invalid API tokens" in body["detail"]
        assert self.call(client, secret, address=HOME).status_code == 200  # other clients are not affected
        event = AuditEvent.objects.get(action="api_token.throttle")
        assert event.object_repr == ATTACKER and event.changes["failures"] == 20

    def test_the_token_block_ends(self, client, engineer, team, token_for, settings):
        settings.API_TOKEN_LOCKOUT_SECONDS = 1
        _token, secret = token_for(engineer, team)
        for _ in range(20):
            self.call(client, "garbage")
        assert self.call(client, secret).status_code == 429
        wait_for_expiry(1)
        assert self.call(client, secret).status_code == 200
