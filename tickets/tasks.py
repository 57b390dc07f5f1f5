"""Celery wrappers for tickets; each runs in the schema of the ISP that queued it."""

from celery import shared_task


@shared_task
def check_ticket_slas() -> dict:
    """Warn about tickets near an SLA target and escalate breached ones (beat runs it
    every few minutes in every ISP; each step happens once per ticket)."""
    from tickets import services

    return services.check_slas()
