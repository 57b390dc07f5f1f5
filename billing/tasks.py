"""Celery wrappers for billing; each runs in the schema of the ISP that queued it."""

import logging
import smtplib
from datetime import date

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from billing import announce, dunning, services
from billing.models import BillingSettings, Invoice
from billing.pdf import identity, invoice_pdf
from ispops.messaging import services as messaging
from subscribers import plan_changes

log = logging.getLogger(__name__)


@shared_task
def run_billing_task(day_iso: str, actor_label: str) -> int:
    """The billing run for a day (safe to repeat: each period is charged once)."""
    return services.run_billing(date.fromisoformat(day_iso), actor=actor_label).pk


@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=60,
    retry_kwargs={"max_retries": 4},
)
def email_invoice(invoice_id: int) -> str:
    """Email the invoice's PDF to its customer, with the ISP's "invoice issued" text."""
    invoice = Invoice.objects.select_related("customer").filter(pk=invoice_id).first()
    if invoice is None:
        return "no such invoice"
    customer = invoice.customer
    if not customer.email:
        return "the customer has no email address"
    cfg = BillingSettings.load()
    isp = identity(cfg)
    context = {
        **announce.invoice_context(invoice, cfg),
        "customer": messaging.customer_context(customer),
        "isp_name": isp["name"],
    }
    subject, body = messaging.render("invoice_issued", "email", context)
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
        reply_to=[cfg.email] if cfg.email else None,
    )
    message.attach(f"{invoice.number}.pdf", invoice_pdf(invoice), "application/pdf")
    message.send()
    log.info("invoice %s emailed to %s", invoice.number, customer.email)
    return "sent"


@shared_task
def daily_billing() -> int:
    """Beat's daily run (per ISP, through ispops.tasks.fan_out): bill today."""
    now = timezone.now()
    return services.run_billing(timezone.localdate(now), actor="daily billing run", at=now).pk


@shared_task
def announce_invoices() -> int:
    """Beat's job (per ISP, every minute): tell customers of the billing runs' new
    invoices (billing.announce), once each."""
    return announce.announce_due()


@shared_task
def daily_dunning() -> str:
    """Beat's daily dunning (per ISP): today's reminders and suspensions, once each."""
    now = timezone.now()
    report = dunning.run_dunning(timezone.localdate(now), actor="daily dunning run", at=now)
    return report.summary()


@shared_task
def enforce_expiry() -> str:
    """Beat's every-minute check (per ISP): suspend prepaid accounts whose paid time
    and grace are over, holds respected."""
    report = dunning.enforce_prepaid_expiry(timezone.now(), actor="prepaid expiry")
    return f"{report.suspended} suspended, {report.held} held, {len(report.errors)} errors"


@shared_task
def apply_plan_changes() -> str:
    """Beat's every-minute run (per ISP): plan changes scheduled for the end of a paid
    period that are now due, each applied once (subscribers.plan_changes.apply claims
    its row). Every minute because a payment made after the moment would otherwise buy
    the next prepaid term on the old plan."""
    counts = plan_changes.apply_due(timezone.now())
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
