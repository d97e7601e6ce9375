"""Layout is behaviour: one helper that says whether a page a person sees is usable.

    def test_something(page, page_log):          # page_log records console errors and failed responses
        ...
        assert_page_usable(page)                 # after the page loads
        with htmx_swap(page):                    # after each htmx swap the test makes
            page.get_by_label("Team").select_option("search")
        assert_page_usable(page)

`assert_page_usable` checks, on the page as it is now (both widths are the caller's choice, see `at_widths`):
- the document does not scroll sideways (`scrollWidth <= clientWidth`);
- each plotly chart's drawn area (`svg.main-svg`) lies inside its panel and below the panel's heading;
- every visible link and button can be clicked: `elementFromPoint` at its centre is it or inside it;
- no console error, no uncaught exception, no response >= 400 for any resource (the favicon included).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

WIDTHS = (1400, 1024)
HEIGHT = 900
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


@dataclass
class PageLog:
    """Everything the browser reported that a person would call an error, since the last `take()`."""

    errors: list[str] = field(default_factory=list)
    favicons_checked: dict[str, int] = field(default_factory=dict)

    @classmethod
    def attach(cls, page) -> PageLog:
        log = cls()
        page.on("console", lambda msg: msg.type == "error" and log.errors.append(
            f"console error: {msg.text} ({(msg.location or {}).get('url', '')})"))
        page.on("pageerror", lambda exc: log.errors.append(f"uncaught exception: {exc}"))
        page.on("response", lambda response: response.status >= 400 and log.errors.append(
            f"HTTP {response.status} for {response.request.method} {response.url}"))
        page.on("requestfailed", lambda request: _failed(request) and log.errors.append(
            f"request failed: {request.method} {request.url} ({request.failure})"))
        page._layout_log = log
        return log

    def take(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors


def _failed(request) -> bool:
    # Leaving a page aborts its polls and pending fragments: the browser's doing, not the server's.
    return "ERR_ABORTED" not in (request.failure or "")


# One pass over the DOM: returns a list of problems (strings). Runs in the page.
_CHECK_JS = r"""
() => {
  const problems = [];
  const describe = (el) => {
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || el.title || '').trim().replace(/\s+/g, ' ');
    const id = el.id ? '#' + el.id : '';
    const href = el.getAttribute('href') ? ` href=${el.getAttribute('href')}` : '';
    return `<${el.tagName.toLowerCase()}${id}${href}> "${text.slice(0, 60)}"`;
  };
  const doc = document.scrollingElement;
  if (doc.scrollWidth > doc.clientWidth) {
    // Name the widest culprits: elements whose right edge passes the viewport, innermost first.
    const wide = [...document.body.querySelectorAll('*')]
      .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
      .filter((el) => ![...el.children].some((c) => c.getBoundingClientRect().right > doc.clientWidth + 1))
      .slice(0, 3).map(describe);
    problems.push(`document scrolls sideways: scrollWidth ${doc.scrollWidth} > clientWidth ${doc.clientWidth}; ` +
                  `widest: ${wide.join(', ')}`);
  }
  window.scrollTo(0, 0);

  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    if (!plot.checkVisibility()) continue;
    const svg = plot.querySelector('svg.main-svg');
    const panel = plot.closest('.panel, .card');
    const name = plot.id || panel?.querySelector('h2, h3, h4')?.textContent.trim() || 'a chart';
    if (!svg) { problems.push(`chart ${name}: nothing drawn`); continue; }
    if (!panel) { problems.push(`chart ${name}: not inside a .panel or .card`); continue; }
    const s = svg.getBoundingClientRect(), p = panel.getBoundingClientRect();
    if (s.left < p.left - 1 || s.right > p.right + 1 || s.top < p.top - 1 || s.bottom > p.bottom + 1) {
      problems.push(`chart ${name}: drawn area ${Math.round(s.left)}..${Math.round(s.right)} x ` +
                    `${Math.round(s.top)}..${Math.round(s.bottom)} leaves its panel ${Math.round(p.left)}..` +
                    `${Math.round(p.right)} x ${Math.round(p.top)}..${Math.round(p.bottom)}`);
    }
    // The chart's title: the last heading of the panel that comes before the chart in the document.
    const headings = [...panel.querySelectorAll('h1, h2, h3, h4')]
      .filter((h) => h.compareDocumentPosition(plot) & Node.DOCUMENT_POSITION_FOLLOWING);
    const title = headings[headings.length - 1];
    if (!title) { problems.push(`chart ${name}: its panel has no heading above it`); continue; }
    const t = title.getBoundingClientRect();
    if (s.top < t.bottom - 1) {
      problems.push(`chart ${name}: drawn area starts at ${Math.round(s.top)}, above the bottom of its title ` +
                    `"${title.textContent.trim()}" (${Math.round(t.bottom)})`);
    }
  }

  const clickables = document.querySelectorAll(
    'a[href], button, input[type=submit], input[type=button], summary, select');
  for (const el of clickables) {
    if (!el.checkVisibility({ visibilityProperty: true, contentVisibilityAuto: true })) continue;
    let r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;  // sr-only and empty anchors
    if (r.right < 0 || r.bottom < 0 || r.left + window.scrollX < 0) continue;  // deliberately off-screen (skip link)
    if (r.top < 0 || r.bottom > window.innerHeight || r.left < 0 || r.right > window.innerWidth) {
      el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
      r = el.getBoundingClientRect();
    }
    // Inline links that wrap have several boxes: the centre of the first one is on the text.
    const box = el.getClientRects()[0] || r;
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    const hit = document.elementFromPoint(x, y);
    if (!hit || !(hit === el || el.contains(hit))) {
      const inView = x >= 0 && y >= 0 && x <= window.innerWidth && y <= window.innerHeight;
      problems.push(`${describe(el)} cannot be clicked: ` +
                    (hit ? `covered by ${describe(hit)}` : (inView ? 'nothing at its centre' : 'cannot be scrolled into view')));
    }
  }
  window.scrollTo(0, 0);
  return problems;
}
"""

# Charts drawn at their container's width (they follow a resize a frame or two later) and htmx not mid-swap.
_SETTLED_JS = r"""
() => [...document.querySelectorAll('.js-plotly-plot')].every((plot) => {
  const svg = plot.querySelector('svg.main-svg');
  return svg && Math.abs(svg.getBoundingClientRect().width - plot.getBoundingClientRect().width) <= 2;
}) && !document.querySelector('.htmx-request:not([hx-trigger*=every]), .htmx-swapping, .htmx-settling')
"""


def settle(page, timeout: float = 5_000) -> None:
    """Wait (at most `timeout` ms, never failing: the checks report what is still wrong) for the page to settle."""
    with contextlib.suppress(Exception):
        page.wait_for_function(_SETTLED_JS, timeout=timeout)


def page_problems(page, log: PageLog | None = None) -> list[str]:
    """What `assert_page_usable` would complain about, as a list (empty: the page is usable)."""
    log = log or getattr(page, "_layout_log", None)
    if log is None:
        raise RuntimeError("attach a PageLog first: use the `page_log` fixture or PageLog.attach(page)")
    settle(page)
    problems = page.evaluate(_CHECK_JS)
    problems += _favicon_problems(page, log)
    problems += log.take()
    return problems


def assert_page_usable(page, log: PageLog | None = None) -> None:
    problems = page_problems(page, log)
    width = page.viewport_size["width"] if page.viewport_size else "?"
    assert not problems, f"{page.url} at {width} px:\n  " + "\n  ".join(problems)


def _favicon_problems(page, log: PageLog) -> list[str]:
    # The browser fetches the favicon outside the page's network log: fetch what it would (once per URL).
    href = page.evaluate("() => document.querySelector('link[rel~=icon]')?.href || new URL('/favicon.ico', location.href).href")
    if href.startswith("data:"):
        return []
    if href in log.favicons_checked:  # reported once per page log, not on every check
        return []
    status = log.favicons_checked[href] = page.request.get(href).status
    return [f"favicon {href}: HTTP {status}"] if status >= 400 else []


@contextlib.contextmanager
def htmx_swap(page, url: str | re.Pattern | None = None, timeout: float = 10_000):
    """Wrap the action that triggers an htmx request; returns once its fragment is swapped and settled.

    `url`: a part (or pattern) of the request's URL, to tell the swap from a poll on pages that poll."""
    page.evaluate("() => { window.__layoutSettled = []; if (!window.__layoutListening) {"
                  " document.addEventListener('htmx:afterSettle', (e) =>"
                  "   window.__layoutSettled.push(e.detail.pathInfo?.finalRequestPath || e.detail.pathInfo?.requestPath || ''));"
                  " window.__layoutListening = true; } }")

    def wanted(response) -> bool:
        if response.request.headers.get("hx-request") != "true":
            return False
        if url is None:
            return True
        return bool(url.search(response.url)) if isinstance(url, re.Pattern) else url in response.url

    with page.expect_response(wanted, timeout=timeout) as info:
        yield
    path = re.sub(r"^https?://[^/]+", "", info.value.url)
    page.wait_for_function("(path) => window.__layoutSettled.some((p) => path.startsWith(p.split('?')[0]))",
                           arg=path, timeout=timeout)
    settle(page)


def at_widths(page, check, widths=WIDTHS) -> None:
    """Call check() at each width on the loaded page (set_viewport_size: no reload)."""
    for width in widths:
        if page.viewport_size["width"] != width:
            page.set_viewport_size({"width": width, "height": HEIGHT})
        check(width)


def screenshot(page, name: str) -> Path | None:
    """A full-page screenshot for a reviewer, when PORTAL_SCREENSHOTS=1 (`make screenshots`): at ~0.2 s each, the
    layout walk's ~280 would cost about a third of its time in every `make test`, where the checks decide."""
    if os.environ.get("PORTAL_SCREENSHOTS") != "1":
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path
