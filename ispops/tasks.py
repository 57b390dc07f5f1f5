"""Platform-wide tasks: fanning a scheduled job out to every active ISP, a probe, and
handing work to a worker without ever failing the caller."""

import logging

from celery import shared_task
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.celery import app

log = logging.getLogger(__name__)


def hand_to_worker(task, *args, what: str) -> bool:
    """Send `task` to a worker. The work it does is already in the database (a payment,
    a router job, a message), so if the broker is down this logs, returns False and a
    periodic sweep sends it later: the caller (a web request, say) never fails for it."""
    try:
        task.delay(*args)
    except Exception as exc:  # any broker failure
        log.warning("%s not handed to a worker (%s); the sweep will", what, exc)
        return False
    return True


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
