import json

from django import template

register = template.Library()


@register.filter
def as_json(value) -> str:
    """A change set as compact JSON, one line that wraps (the page escapes it like any text)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
