"""The captive page's one worker task: logging a device in over the router's API when
the browser cannot post to the router itself (a thin wrapper; runs in the ISP's schema
it was sent from)."""

from celery import shared_task

from hotspot import entitlements
from hotspot.models import Entitlement


@shared_task
def login_device_task(entitlement_id: int, ip: str, mac: str) -> bool:
    entitlement = Entitlement.objects.filter(pk=entitlement_id).first()
    if entitlement is None:
        return False
    # One queued behind a live one logs in as the live one (entitlements.login_device).
    return entitlements.login_device(entitlement, ip, mac)
