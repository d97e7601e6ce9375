"""Small formatting filters for the evals pages."""

import json

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def pct(value, digits: int = 1):
    """0.8734 → "87.3%"; None → "—"."""
    if value is None or value == "":
        return "—"
    try:
        return f"{100 * float(value):.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "—"


@register.filter
def num(value, digits: int = 3):
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return "—"


@register.filter
def signed(value, digits: int = 3):
    if value is None:
        return "—"
    return f"{float(value):+.{int(digits)}f}"


@register.filter
def pp(value, digits: int = 1):
    """A difference of two rates in percentage points: -0.125 → "−12.5 pp"."""
    if value is None:
        return "—"
    return f"{100 * float(value):+.{int(digits)}f} pp".replace("-", "−")


@register.filter
def pvalue(value):
    """"p = 0.250", or "p < 0.001"."""
    if value is None:
        return "p = —"
    return "p < 0.001" if float(value) < 0.001 else f"p = {float(value):.3f}"


@register.filter
def pjson(value):
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


@register.filter
def get(mapping, key):
    if isinstance(mapping, dict):
        return mapping.get(key) if key in mapping else mapping.get(str(key))
    return None


@register.simple_tag
def verdict_badge(passed):
    if passed is True:
        return format_html('<span class="badge {}">{}</span>', "ok", "pass")
    if passed is False:
        return format_html('<span class="badge {}">{}</span>', "bad", "fail")
    return format_html('<span class="badge">{}</span>', "unscored")
