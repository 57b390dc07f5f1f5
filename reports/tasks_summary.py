"""The monthly summary task: on the 1st (beat, through ispops.tasks.fan_out), email
last month's summary PDF (reports.summary) to each active owner of the ISP, once per
month per owner.

The messaging queue sends text only, so the email (with its PDF) is sent here with
Django's EmailMessage, as billing.tasks.email_invoice does, and recorded in the message
log (ispops.messaging Message, `related` "summary:YYYY-MM:<owner id>"). That row is the
claim: written, under a lock on its key, before the email goes, so a second run (or two
at once) sends nothing more; removed again if the email could not be sent.
"""

import hashlib
import logging
import smtplib

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.utils import timezone

from ispops.messaging.models import Channel, Message
from ispops.staff.models import Role, User
from reports import summary

log = logging.getLogger(__name__)


def _claim(key: str, owner: User, subject: str, body: str, now) -> Message | None:
    """The message-log row for `key`, written now; None if it was already there."""
    digest = hashlib.sha256(key.encode()).digest()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)",
                [int.from_bytes(digest[:8], "big", signed=True)],
            )
        if Message.objects.filter(related=key).exists():
            return None
        return Message.objects.create(
            channel=Channel.EMAIL,
            to=owner.email,
            subject=subject,
            body=body,
            state=Message.State.SENT,
            attempts=1,
            related=key,
            created_at=now,
            sent_at=now,
        )


def send_summaries(today, *, now) -> int:
    """Email the summary of the month before `today` to every active owner who has not
    had it; returns how many were sent."""
    start, _ = summary.last_month(today)
    subject = f"Monthly summary for {start:%B %Y}"
    body = f"The summary of {start:%B %Y} is attached."
    sent = 0
    for owner in User.objects.filter(role=Role.OWNER, is_active=True).order_by("pk"):
        if not owner.email:
            continue
        claim = _claim(f"summary:{start:%Y-%m}:{owner.pk}", owner, subject, body, now)
        if claim is None:
            continue
        try:
            message = EmailMessage(
                subject=subject,
                body=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[owner.email],
            )
            message.attach(
                f"summary-{start:%Y-%m}.pdf", summary.summary_pdf(owner, today), "application/pdf"
            )
            message.send()
        except Exception:
            claim.delete()  # not sent: the next run tries again
            raise
        sent += 1
        log.info("monthly summary %s sent to %s", f"{start:%Y-%m}", owner.email)
    return sent


@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=60,
    retry_kwargs={"max_retries": 4},
)
def send_monthly_summary() -> int:
    now = timezone.now()
    return send_summaries(timezone.localdate(now), now=now)
