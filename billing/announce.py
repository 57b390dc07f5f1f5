"""Telling customers about their invoices: what the "invoice issued" message knows
about an invoice (with `link`, its PDF by a signed link that expires), and the
announcement of the invoices a billing run opens, per the ISP's setting."""

from django.utils import timezone

from billing import links
from billing.models import BillingSettings, Invoice
from ispops.messaging import services as messaging
from subscribers.models import Customer

TEMPLATE = "invoice_issued"
CHANNELS = {"sms": ("sms",), "email": ("email",), "both": ("sms", "email"), "none": ()}


def invoice_context(invoice, cfg, *, at=None) -> dict:
    """The "invoice issued" template's context for `invoice`; the link works, without
    signing in, for a while after `at`."""
    return {
        "invoice": {"number": invoice.number},
        "amount": invoice.outstanding if invoice.outstanding > 0 else invoice.total,
        "due_on": f"{invoice.due_on:%d %b %Y}",
        "paybill": cfg.paybill,
        "link": links.document_url(links.INVOICE, invoice.pk, at=at or timezone.now()),
    }


def announce(invoices, *, at, cfg: BillingSettings | None = None) -> int:
    """Queue the "invoice issued" message for each of `invoices` with something to pay,
    on the ISP's channels, sent once the current transaction (if any) commits. Returns
    the number of messages queued."""
    cfg = cfg or BillingSettings.load()
    channels = CHANNELS.get(cfg.announce_invoices, ())
    due = [i for i in invoices if i.kind == Invoice.Kind.INVOICE and i.total > 0]
    if not channels or not due:
        return 0
    customers = Customer.objects.in_bulk({i.customer_id for i in due})
    items = [
        (customers[i.customer_id], TEMPLATE, invoice_context(i, cfg, at=at), f"invoice:{i.pk}")
        for i in due
    ]
    return len(messaging.notify_many(items, channels=channels))
