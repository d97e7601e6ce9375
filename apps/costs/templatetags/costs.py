from django import template

register = template.Library()


@register.filter
def money(value, digits: int = 2):
    if value is None or value == "":
        return "—"
    value = float(value)
    if 0 < abs(value) < 0.01 and int(digits) <= 2:
        return f"${value:,.4f}"
    return f"${value:,.{int(digits)}f}"


@register.filter
def pct(value):
    if value is None:
        return "—"
    sign = "+" if value > 0 else ""
    return f"{sign}{value:.1f}%"


@register.filter
def plain_pct(value):
    return "—" if value is None else f"{value:.0f}%"


@register.filter
def cell(row: dict, column):
    value = row.get(column.key)
    if value is None:
        return "—"
    if column.kind == "money":
        return money(value, 4 if abs(float(value)) < 1 else 2)
    if column.kind == "pct":
        return pct(value) if column.key.endswith("change_pct") else f"{value:.1f}%"
    if column.kind == "int":
        return f"{int(round(value)):,}"
    if column.kind == "float":
        return f"{value:,.2f}"
    return value
