"""Hotspot display filters: {% load hotspot_units %} (with {% load ui %} for money and
speeds)."""

from django import template

from hotspot import vouchers

register = template.Library()


@register.filter
def validity(minutes):
    """90 -> "1 hour 30 minutes"; 1440 -> "1 day"."""
    return vouchers.validity_text(minutes) if minutes else ""


@register.filter
def data_size(size):
    """Bytes as operators count them (10^9 a GB): 1500000000 -> "1.5 GB"; None ->
    "unlimited"."""
    if not size:
        return "unlimited"
    for unit, factor in (("GB", 10**9), ("MB", 10**6)):
        if size >= factor:
            return f"{size / factor:.3f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{size} bytes"


@register.filter
def group_code(code):
    """A card's code in groups of four, as printed."""
    return vouchers.grouped(code or "")
