"""Every page each demo role can reach is usable at 1400 and 1024 px: after it loads and after each htmx swap.

The pages are found the way a person finds them: from the home page, following every link on every page
(one page per URL pattern, so one prompt, one version, one eval run, one collection, one use case, ...), on
the demo data. One test walks all roles: seeding the demo costs ~15 s and a live-server test cannot keep it.
Screenshots land in test-results/screenshots/ (cleaned at the start); the list of pages walked in
test-results/layout-pages.txt.
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlsplit

import pytest
from django.urls import Resolver404, resolve

from tests.e2e.conftest import log_in
from tests.e2e.layout import HEIGHT, SCREENSHOTS, WIDTHS, PageLog, htmx_swap, page_problems, screenshot

ROLES = {  # username: what they stand for
    "admin": "admin", "olivia": "team owner", "evan": "engineer", "pat": "viewer (product manager)",
    "sam": "council member",
}
# Not pages: downloads, machine endpoints, the Django admin and the API docs (not the portal's own pages).
NOT_PAGES = re.compile(r"(\.(csv|json|jsonl|md|txt)$)|/export|/api/|/admin/|/metrics$|/healthz$|/readyz$")
MAX_PAGES_PER_ROLE = 90
SCREENSHOT_BOTH_WIDTHS = "admin"  # the others at 1024 px only: a screenshot costs as much as the checks  # the walk stops here, so a link loop cannot hang the suite
# Detail pages the walk must reach (a regression that hides them would otherwise pass silently).
MUST_VISIT = {"prompts:detail", "prompts:version", "evals:run_detail", "rag:collection", "reviews:detail",
              "incidents:detail", "slos:use_case",
              "experiments:detail", "redteam:campaign_detail"}


@pytest.fixture
def demo_site(demo_people, monkeypatch):
    """The whole demo (`seed_demo`'s parts), with hashed vectors for MiniLM: loading and running the model costs
    a minute on this machine and layout does not depend on which passages rank first. The live server runs in
    this process, so its searches use them too."""
    from apps.accounts.models import Team
    from apps.core.request_context import acting_as
    from apps.costs.demo import seed_demo_costs
    from apps.evals.demo import seed_demo_evals
    from apps.experiments.demo import seed_demo_experiments
    from apps.incidents.demo import seed_demo_followup, seed_demo_incidents
    from apps.llm.offline import embeddings
    from apps.prompts.demo import seed_demo_prompts
    from apps.rag.demo import seed_demo_rag
    from apps.redteam.demo import seed_demo_redteam
    from apps.reviews.demo import seed_demo_reviews
    from apps.slos.demo import seed_demo_slos
    from portal.demo import seed_demo_models
    from tests.rag.conftest import hashed_embedding

    monkeypatch.setattr(embeddings, "embed_texts", lambda texts: [hashed_embedding(t) for t in texts])
    monkeypatch.setattr(embeddings, "count_tokens", lambda texts: sum(len(t.split()) + 2 for t in texts))
    with acting_as(None):
        seed_demo_models()
    teams = {team.slug: team for team in Team.objects.all()}
    seed_demo_prompts(demo_people, teams)
    seed_demo_evals(demo_people, teams)
    seed_demo_rag(demo_people, teams, index_now=True)
    seed_demo_costs(demo_people, teams, scale=0.1)  # a tenth of the ledger draws the same charts
    seed_demo_reviews(demo_people, teams)
    seed_demo_experiments(demo_people, teams)
    seed_demo_incidents(demo_people, teams)
    seed_demo_redteam(demo_people, teams)
    seed_demo_followup(demo_people, teams)
    seed_demo_slos(demo_people, teams)
    return demo_people


def route_of(url: str, origin: str) -> str | None:
    """The URL pattern a link leads to (one visit per pattern), or None when it is not a portal page."""
    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}" != origin or NOT_PAGES.search(parts.path):
        return None
    try:
        match = resolve(parts.path)
    except Resolver404:
        return parts.path  # a broken link: visit it, so the 404 is reported
    return match.view_name


def page_links(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('a[href]')]
        .filter((a) => !a.hasAttribute('download') && !a.getAttribute('href').startsWith('#'))
        .map((a) => a.href.split('#')[0])""")


# The swaps a person makes on a page, found in one pass: a filter's select, its live search, its button, and the
# next page of a list. Each is (form, what, CSS selector to act on, how, value, URL part of the request).
_INTERACTIONS_JS = r"""
() => {
  const found = [];
  const visible = (el) => el && el.checkVisibility();
  document.querySelectorAll('main form[hx-get]').forEach((form, i) => {
    if (!visible(form)) return;
    const sel = `main form[hx-get] >> nth=${i}`;
    const target = new URL(form.getAttribute('hx-get'), location.href).pathname;
    const trigger = form.getAttribute('hx-trigger') || 'submit';
    const select = [...form.querySelectorAll('select')].find((s) => visible(s) && s.options.length > 1);
    if (select && trigger.includes('change')) {
      found.push([i, `filter ${select.name}`, `${sel} >> select[name="${select.name}"]`, 'select',
                  select.selectedIndex === 1 ? 0 : 1, target]);
    }
    const search = form.querySelector('input[type=search], input[name=q]');
    if (visible(search) && trigger.includes('input')) found.push([i, 'live search', `${sel} >> input[name="${search.name}"]`, 'fill', 'a', target]);
    const button = form.querySelector('button[type=submit], button:not([type]), input[type=submit]');
    if (visible(button)) found.push([i, `submit (${(button.innerText || button.value).trim()})`, sel, 'submit', null, target]);
  });
  const next = [...document.querySelectorAll('main nav.pagination a[hx-get]')].find((a) => /Next|Older|→/.test(a.innerText));
  if (visible(next)) found.push(['pages', 'next page', 'main nav.pagination a[hx-get] >> text=/Next|Older|→/', 'click', null, 'page=']);
  return found;
}
"""


def htmx_interactions(page, turn: int):
    """(what, url part, action) for the swaps to make on this page: the next page of a list, and one way of using
    each filter form, taken in turn (`turn`: the role's number), so that the roles between them use every way
    while each pays for one swap per form."""
    by_form = {}
    for form, what, selector, how, value, target in page.evaluate(_INTERACTIONS_JS):
        by_form.setdefault(form, []).append((what, selector, how, value, target))
    for form, ways in by_form.items():
        what, selector, how, value, target = ways[0] if form == "pages" else ways[turn % len(ways)]
        element = page.locator(selector).first
        action = {"select": lambda e=element, v=value: e.select_option(index=v),
                  "fill": lambda e=element, v=value: e.fill(v),
                  "submit": lambda e=element: _submit(e),
                  "click": element.click}[how]
        yield what, target, action


def _submit(form) -> None:
    """Submit as a person would: a required box left empty (the RAG question) gets a word first."""
    form.evaluate("(f) => f.querySelectorAll('input[required]').forEach((el) => { if (!el.value) el.value = 'leave'; })")
    form.locator("button[type=submit], button:not([type]), input[type=submit]").first.click()


def walk(page, log: PageLog, username: str, origin: str, turn: int) -> tuple[list[str], list[str]]:
    """Visit every page reachable from the home page; returns (pages visited, problems)."""
    queue, seen, visited, problems = [origin + "/"], set(), [], []

    def check(url: str, when: str) -> None:
        width = page.viewport_size["width"]
        problems.extend(f"[{username} @ {width} px, {when}] {url}: {p}" for p in page_problems(page, log))

    while queue and len(visited) < MAX_PAGES_PER_ROLE:
        url = queue.pop(0)
        route = route_of(url, origin)
        if route is None or route in seen:
            continue
        seen.add(route)
        page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
        response = page.goto(url)
        path = re.sub(r"^https?://[^/]+", "", url)
        visited.append(f"{route} {path} -> {response.status if response else '?'}")
        swaps = []
        check(path, "loaded")
        links = page_links(page)
        shot = f"{username}_{route.replace(':', '-')}"
        if username == SCREENSHOT_BOTH_WIDTHS:
            screenshot(page, f"{shot}_{WIDTHS[0]}")
        for width in WIDTHS[1:]:
            page.set_viewport_size({"width": width, "height": HEIGHT})
            check(path, "loaded")
            screenshot(page, f"{shot}_{width}")
        for what, target, action in list(htmx_interactions(page, turn)):
            try:
                with htmx_swap(page, url=target):
                    action()
            except Exception as exc:  # noqa: BLE001 - reported with the page, the walk goes on
                problems.append(f"[{username}] {path}: {what} did not swap: {str(exc).splitlines()[0]}")
                continue
            swaps.append(what)
            check(path, f"after {what}")
        if swaps:  # the swapped page at the other width too
            visited[-1] += f"; swaps: {', '.join(swaps)}"
            page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
            check(path, "after the swaps")
        queue.extend(link for link in links if route_of(link, origin) not in seen)
    return visited, problems


@pytest.mark.timeout(900)  # about 90 s on a quiet machine; several times that when 8 sessions share its 2 cores
def test_every_page_is_usable_for_every_demo_role_at_both_widths(browser, live_server, demo_site):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    report, problems, reached = [], [], set()
    try:
        for turn, (username, role) in enumerate(ROLES.items()):
            context = browser.new_context(base_url=live_server.url, viewport={"width": WIDTHS[0], "height": HEIGHT})
            context.set_default_timeout(15_000)
            page = context.new_page()
            log = PageLog.attach(page)
            if turn == 0:  # the one page everybody sees before a role
                page.goto("/accounts/login/")
                for width in WIDTHS:
                    page.set_viewport_size({"width": width, "height": HEIGHT})
                    problems += [f"[anonymous @ {width} px] /accounts/login/: {p}" for p in page_problems(page, log)]
                screenshot(page, "anonymous_accounts-login_1024")
            log_in(page, username)
            visited, found = walk(page, log, username, live_server.url, turn)
            context.close()
            report.append(f"## {username} ({role}): {len(visited)} pages\n" + "\n".join(visited))
            reached |= {line.split()[0] for line in visited}
            problems += found
    finally:
        SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS.parent / "layout-pages.txt").write_text(
            "\n\n".join(report) + "\n\nProblems:\n" + "\n".join(problems) + "\n")
    assert reached >= MUST_VISIT, f"the walk did not reach {sorted(MUST_VISIT - reached)}"
    assert not problems, f"{len(problems)} layout problems:\n" + "\n".join(problems)
