"""A person who mistypes their password too often: the login page says the account is locked and for how
long, and the right password does not get in until the lock ends (issue #12)."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in


def try_password(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def lock_ends_now() -> None:
    """Let the lock's time pass: its counters expire in a moment (tests/accounts covers the real expiry)."""
    from apps.accounts import throttle

    client = throttle._redis()
    for key in client.scan_iter(match="*:throttle:*"):
        client.pexpire(key, 1)
    time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_a_locked_account_is_told_so_on_the_login_page_and_signs_in_after_the_lock(page, demo_people, settings):
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        try_password(page, "evan", "not-my-password")
        expect(page.get_by_role("alert")).to_contain_text("did not match")

    try_password(page, "evan", "portal-demo")
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins for this account")
    expect(page.get_by_role("alert")).to_contain_text("minute")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))

    lock_ends_now()
    log_in(page, "evan")
    expect(page.get_by_role("heading", name="Welcome, Evan")).to_be_visible()
