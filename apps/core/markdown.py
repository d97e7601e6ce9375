"""The one way to put untrusted Markdown on a page (ADR 0041): markdown-it-py (CommonMark + tables +
strikethrough) with raw HTML off, then the nh3 allow-list (text tags only; links http(s), mailto or relative,
`rel="noopener noreferrer"`). Used for RAG answers (with a render rule for their [n] citations) and runbooks.
"""

from __future__ import annotations

from collections.abc import Callable

import nh3
from markdown_it import MarkdownIt

TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
        "blockquote", "ul", "ol", "li", "a", "span", "table", "thead", "tbody", "tr", "th", "td"}
ATTRIBUTES = {"a": {"href", "title", "class", "data-chunk"}, "span": {"class", "title"}, "ol": {"start"}}


def markdown_html(text: str, *, text_rule: Callable[[str], str] | None = None) -> str:
    """Sanitised HTML of `text`. `text_rule(content) -> html` renders text tokens (never a link's address or
    title); it must escape what it does not turn into markup."""
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    if text_rule is not None:
        md.add_render_rule("text", lambda self, tokens, idx, options, env: text_rule(tokens[idx].content))
    return nh3.clean(md.render(text), tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer")
