"""Celery wrappers for the inventory app; each runs in the ISP's schema it was sent from."""

from celery import shared_task

from inventory import services


@shared_task
def notify_low_stock(threshold_id: int) -> bool:
    """Email the owners and admins about one low-stock dip (once)."""
    return services.notify_low_stock(threshold_id)


@shared_task
def check_low_stock() -> int:
    """Re-check every threshold and send alerts whose email was not queued."""
    return services.check_all_thresholds()
