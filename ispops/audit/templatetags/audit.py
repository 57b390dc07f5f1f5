"""{% audit_trail obj %}: the history block every audited record's page includes."""

from django import template

from ispops.audit.display import readable
from ispops.audit.models import AuditEntry

register = template.Library()


@register.inclusion_tag("audit/trail.html")
def audit_trail(obj, limit=50):
    entries = readable(AuditEntry.objects.for_object(obj).select_related("actor")[:limit])
    return {"entries": entries, "limit": limit}
