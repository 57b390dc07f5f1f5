"""The captive page's one worker task: logging a device in over the router's API when
the browser cannot post to the router itself (a thin wrapper; runs in the ISP's schema
it was sent from)."""

from celery import shared_task

from hotspot.models import Entitlement


@shared_task
def login_device_task(entitlement_id: int, ip: str, mac: str) -> bool:
    from hotspot import captive, entitlements

    entitlement = Entitlement.objects.filter(pk=entitlement_id).first()
    if entitlement is None:
        return False
    return entitlements.login_device(captive.login_target(entitlement), ip, mac)
