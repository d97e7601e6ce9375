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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Mark the browser tests, and run them last (after pytest-django's own ordering, which stays as is within
    each group, but for the layout walk, first among them): Playwright's sync API keeps an event loop running in the main thread for the rest of the
    session, so a later test that calls asyncio.run() would fail."""
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    # The layout walk is the longest test by far: first among the browser tests, so it does not end the run alone
    # on one worker while the other waits.
    items.sort(key=lambda item: (item.get_closest_marker("e2e") is not None,
                                 "test_layout.py::test_every_page" not in item.nodeid))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # CI shares two cores with PostgreSQL, Redis and the live server: give assertions room, not flakiness.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, serving static files as production does: collected (hashed names, compressed
    copies) and through whitenoise, not through Django's finder view that the plain fixture puts in front."""
    from django.core.management import call_command
    from pytest_django.live_server_helper import LiveServer

    call_command("collectstatic", interactive=False, verbosity=0)  # also refreshes the storage's manifest
    addr = request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    server = LiveServer(addr, start=False)
    server.thread.static_handler = lambda application: application  # whitenoise middleware answers /static/
    server.start()
    yield server
    server.stop()


def csp_violations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or m.startswith("CSP violation")]


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    # Any violation of the Content-Security-Policy fails the test, whatever the test itself checks.
    context.add_init_script("""document.addEventListener("securitypolicyviolation", (event) => console.error(
        `CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"} in ${event.sourceFile}`));""")
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    yield page
    context.close()
    violations = csp_violations(page.console_errors)
    assert not violations, f"Content-Security-Policy violations: {violations}"


@pytest.fixture
def page_log(page):
    """Records the page's console errors and failed responses for `assert_page_usable` (tests/e2e/layout.py)."""
    from tests.e2e.layout import PageLog

    return PageLog.attach(page)


@pytest.fixture
def demo_people(transactional_db):
    from portal.demo import seed_demo_accounts

    return seed_demo_accounts()["people"]


def prompt_in_production(demo_people, name: str, commit_message: str):
    """Support AI's prompt `name` whose v1 (context and question, the offline model) is in production, approved
    by Olivia: the baseline an eval run compares against. Returns (team, prompt, v1)."""
    from apps.accounts.models import Team
    from apps.prompts.content import Draft
    from apps.prompts.services import promotion_request_approve, promotion_request_open, prompt_create
    from portal.demo import seed_demo_models

    seed_demo_models()
    team = Team.objects.get(slug="support-ai")
    evan, olivia = demo_people["evan"], demo_people["olivia"]
    prompt = prompt_create(team=team, name=name, actor=evan, commit_message=commit_message,
                           draft=Draft(kind="text", config={"model": "local-extractive"},
                                       template="Context:\n{{ context }}\nQuestion: {{ question }}"))
    v1 = prompt.versions.get()
    promotion_request_approve(request=promotion_request_open(prompt=prompt, version=v1, actor=evan, reason="go"),
                              user=olivia)
    return team, prompt, v1


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
