"""Formatting of the experiment page's figures (rates with intervals, milliseconds, points)."""

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

NO_DATA = mark_safe('<span class="muted">no data</span>')  # noqa: S308 - a constant

register = template.Library()


@register.filter
def rate(value: dict | None):
    if not value or value.get("value") is None:
        return NO_DATA
    if value.get("low") is None:  # a single unit: no interval per unit yet
        return format_html('{}&nbsp;% <br><span class="small muted">(n = {}, one unit)</span>',
                           f"{value['value'] * 100:.1f}", value["n"])
    return format_html('{}&nbsp;% <br><span class="small muted">{}–{} % (n = {})</span>',
                       f"{value['value'] * 100:.1f}", f"{value['low'] * 100:.1f}", f"{value['high'] * 100:.1f}",
                       value["n"])


@register.filter
def millis(value: dict | None):
    if not value or value.get("value") is None:
        return NO_DATA
    if value.get("high") is None:  # too few calls to bound it from above
        return format_html('{}&nbsp;ms<br><span class="small muted">≥ {}</span>', value["value"], value["low"])
    return format_html('{}&nbsp;ms<br><span class="small muted">{}–{}</span>', value["value"], value["low"],
                       value["high"])


@register.filter
def points(value) -> str:
    return "—" if value is None else f"{value * 100:+.1f} pts"


@register.filter
def p_value(value) -> str:
    """A p-value as people read it: three significant digits, never a bare "0.000"."""
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"= {value:.3g}"


@register.filter
def confidence(alpha) -> str:
    return f"{(1 - float(alpha)) * 100:g}"
