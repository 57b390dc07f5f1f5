"""Display filters every app's templates use: {% load ui %}."""

from django import template
from django.utils import timezone

from ispops.lib.money import format_kes

register = template.Library()


@register.filter
def kes(value):
    """1234.5 -> "KES 1,234.50"; empty stays empty."""
    if value is None or value == "":
        return ""
    return format_kes(value)


@register.filter
def speed(kbps):
    """10000 -> "10M" (RouterOS notation)."""
    from subscribers.services import format_speed

    return format_speed(kbps)


@register.filter
def waited(since):
    """How long ago, compactly: "5 min", "3 h", "4 days"."""
    if not since:
        return ""
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''}"


@register.filter
def get_item(mapping, key):
    return mapping.get(key, "") if mapping else ""


@register.filter
def list_columns(spec):
    """partials/list.html's headings: "Number, Total:num, :actions" -> [{"label": "Number",
    "cls": ""}, {"label": "Total", "cls": "num"}, {"label": "", "cls": "actions"}]."""
    columns = []
    for part in str(spec or "").split(","):
        label, _, cls = part.strip().partition(":")
        columns.append({"label": label.strip(), "cls": cls.strip()})
    return columns


@register.simple_tag
def speeds(down, up) -> str:
    """{% speeds plan.download_kbps plan.upload_kbps %} -> "10M/5M" (empty if neither)."""
    from subscribers.services import format_speed

    if not down and not up:
        return ""
    return f"{format_speed(down) or '-'}/{format_speed(up) or '-'}"
