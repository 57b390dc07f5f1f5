"""Worker side of creating an ISP from the platform page."""

from celery import shared_task

from ispops.tenancy import services
from ispops.tenancy.models import Isp


@shared_task
def provision_isp(isp_id: int) -> str:
    # Claim: only an ISP still provisioning is worked on, so a duplicate delivery of
    # this message after success does nothing.
    isp = Isp.objects.filter(pk=isp_id, status=Isp.Status.PROVISIONING).first()
    if isp is None:
        return "nothing to do"
    try:
        services.provision_isp(isp)
    except Exception as exc:
        services.mark_failed(isp_id, f"{type(exc).__name__}: {exc}")
        raise
    return isp.schema_name
