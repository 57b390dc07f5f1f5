"""Celery wrappers for messaging; each runs in the schema of the ISP that sent it."""

from celery import shared_task
from django.utils import timezone

from ispops.messaging import phone_codes, services


@shared_task
def send_message(message_id: int) -> str:
    """Send one queued SMS or email (does nothing if it is not due or already sent)."""
    return services.deliver(message_id)


@shared_task
def send_messages(message_ids: list[int]) -> int:
    """Send a batch of queued messages (bulk notifications); returns how many went."""
    return sum(1 for pk in message_ids if services.deliver(pk) == "sent")


@shared_task
def sweep_messages() -> int:
    """Re-send messages whose task was lost and retries whose time has come; campaigns
    whose task was lost go back to a worker too."""
    from ispops.messaging import campaigns

    campaigns.resume_stalled()
    return len(services.sweep_messages())


@shared_task
def forget_phone_codes() -> int:
    """Drop SMS codes past every limit's window (hourly)."""
    return phone_codes.forget(timezone.now())


@shared_task
def send_campaign(campaign_id: int) -> dict:
    """Write a campaign's messages (campaigns.send claims each recipient once)."""
    from ispops.messaging import campaigns

    return campaigns.send(campaign_id)
