"""Celery wrappers for the payments app; each runs in the ISP's schema it was sent from."""

from celery import shared_task

from payments import services


@shared_task
def credit_payment_task(payment_id: int) -> str:
    """Match and credit one stored payment (and restore its subscriber)."""
    return services.credit_payment(payment_id)


@shared_task
def sweep_payments() -> dict:
    """Credit stored payments a lost task left behind; query STK pushes with no callback."""
    return services.sweep()
