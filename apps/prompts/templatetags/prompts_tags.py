import json

from django import template

register = template.Library()


@register.filter
def get_item_or_empty(mapping, key):
    return (mapping or {}).get(key, [])


@register.filter
def words(value):
    """not_configured -> not configured"""
    return str(value).replace("_", " ")


@register.filter
def get_value(mapping, key):
    return (mapping or {}).get(key, "")


@register.filter
def as_json(value):
    """Pretty JSON for configs and schemas (not Python's repr)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
