"""Playwright against Debian's Chromium and a live Django server on the real embedded database.

The browser is launched from /usr/bin/chromium (or PORTAL_CHROMIUM); a downloaded browser build
does not work on this machine. If Chromium is missing the tests fail with the install command.
"""

import os
import shutil

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("PORTAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (as .ci/run does).")
    return path


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # CI shares two cores with PostgreSQL, Redis and the live server: give assertions room, not flakiness.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def page_log(page):
    """Records the page's console errors and failed responses for `assert_page_usable` (tests/e2e/layout.py)."""
    from tests.e2e.layout import PageLog

    return PageLog.attach(page)


@pytest.fixture
def demo_people(transactional_db):
    from portal.demo import seed_demo_accounts

    return seed_demo_accounts()["people"]


def log_in(page, username: str, password: str = "portal-demo") -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")


def log_out(page) -> None:
    page.locator("details.user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/accounts/login/")
