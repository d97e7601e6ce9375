from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def usd(value) -> str:
    """$ with at least two decimals and no trailing zeros beyond them: 10 -> $10.00, 0.075000 -> $0.075."""
    if value is None or value == "":
        return "—"
    number = Decimal(str(value)).normalize()
    if number.as_tuple().exponent > -2:
        number = number.quantize(Decimal("0.01"))
    return f"${number:f}"
