"""Celery wrappers for the hotspot app; each runs in the ISP's schema it was sent from."""

from celery import shared_task


@shared_task
def expire_unsold_vouchers() -> int:
    """Cards never sold past their batch's expiry become expired (hotspot.vouchers)."""
    from hotspot import vouchers

    return vouchers.expire_unsold()
