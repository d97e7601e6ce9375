"""Small formatting filters for the evals pages."""

import json

from django import template
from django.utils.html import format_html

register = template.Library()


DASH = "—"


def _number(value, spec: str, *, scale: float = 1, suffix: str = "") -> str:
    """`scale * value` in the format `spec`, then `suffix`; "—" for None, "" or what is not a number."""
    if value is None or value == "":
        return DASH
    try:
        return f"{format(scale * float(value), spec)}{suffix}"
    except (TypeError, ValueError):
        return DASH


@register.filter
def pct(value, digits: int = 1):
    """0.8734 → "87.3%"; None → "—"."""
    return _number(value, f".{int(digits)}f", scale=100, suffix="%")


@register.filter
def num(value, digits: int = 3):
    return _number(value, f".{int(digits)}f")


@register.filter
def signed(value, digits: int = 3):
    return _number(value, f"+.{int(digits)}f")


@register.filter
def pp(value, digits: int = 1):
    """A difference of two rates in percentage points: -0.125 → "−12.5 pp"."""
    return _number(value, f"+.{int(digits)}f", scale=100, suffix=" pp").replace("-", "−")


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
