"""Platform-wide tasks: fanning a scheduled job out to every active ISP, and a probe."""

from celery import shared_task
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.celery import app


@shared_task
def fan_out(task_name: str, *args, **kwargs) -> dict[str, str]:
    """Send `task_name` once per active ISP, each copy running in that ISP's schema.

    Beat calls this from the public schema; every per-ISP schedule goes through it,
    so a new ISP is picked up at the next tick without touching the schedule.
    Returns {schema: task id}.
    """
    from ispops.tenancy.models import Isp

    sent = {}
    for isp in Isp.objects.active():
        with tenant_context(isp):
            sent[isp.schema_name] = app.send_task(task_name, args=args, kwargs=kwargs).id
    return sent


@shared_task(ignore_result=False)  # a probe: its caller reads the result
def current_schema() -> str:
    """Report the schema the worker ran this task in (used by health checks and tests)."""
    return connection.schema_name


@shared_task(ignore_result=False)  # a probe: its caller reads the result
def staff_emails() -> list[str]:
    """Logins of the current schema's staff (support diagnostics; proves schema routing)."""
    from ispops.staff.models import User

    return sorted(User.objects.values_list("email", flat=True))
