from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """mapping[key], or "" when the mapping or the key is missing (metrics of a run still running)."""
    if isinstance(mapping, dict):
        value = mapping.get(key)
        return "" if value is None else value
    return ""
