"""Telling customers about their invoices: what the "invoice issued" message knows
about an invoice (with `link`, its PDF by a signed link that expires), and the
announcement of the invoices a billing run opens, per the ISP's setting.

A run leaves its invoices with no `announced_at`; beat's job (every minute, per ISP)
runs announce_due, which claims them in batches (a conditional update, rows other
workers hold skipped) and tells each customer once, in the claim's transaction, so a
crash tells nobody rather than somebody twice. The run itself stays as fast as it was,
and nothing is lost if no worker was there to be handed the work."""

from django.db import connection, transaction
from django.utils import timezone

from billing import links
from billing.models import BillingSettings, Invoice
from ispops.messaging import services as messaging
from subscribers.models import Customer

TEMPLATE = "invoice_issued"
BATCH = 500
CHANNELS = {"sms": ("sms",), "email": ("email",), "both": ("sms", "email"), "none": ()}


def invoice_context(invoice, cfg, *, at=None, host: str | None = None) -> dict:
    """The "invoice issued" template's context for `invoice`; the link works, without
    signing in, for a while after `at`. `host`: the ISP's, read once for many."""
    return {
        "invoice": {"number": invoice.number},
        "amount": invoice.outstanding if invoice.outstanding > 0 else invoice.total,
        "due_on": f"{invoice.due_on:%d %b %Y}",
        "paybill": cfg.paybill,
        "link": links.document_url(links.INVOICE, invoice.pk, at=at or timezone.now(), host=host),
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
    host = links.public_host()
    items = [
        (
            customers[i.customer_id],
            TEMPLATE,
            invoice_context(i, cfg, at=at, host=host),
            f"invoice:{i.pk}",
        )
        for i in due
    ]
    return len(messaging.notify_many(items, channels=channels))


def announce_due(*, at=None, batch: int = BATCH) -> int:
    """Announce every run invoice not yet announced, a batch per transaction; the
    invoices paid in the meantime (from credit, say) are claimed but not announced.
    Returns the number of invoices announced."""
    at = at or timezone.now()
    cfg = BillingSettings.load()
    told = 0
    while True:
        with transaction.atomic():
            ids = _claim(batch, at)
            if not ids:
                return told
            open_ones = list(Invoice.objects.unpaid().filter(pk__in=ids))
            announce(open_ones, at=at, cfg=cfg)
            told += len(open_ones)


def _claim(batch: int, at) -> list[int]:
    table = Invoice._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET announced_at = %s
            WHERE id IN (
                SELECT id FROM {table}
                WHERE announced_at IS NULL AND billing_run_id IS NOT NULL
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """,
            [at, batch],
        )
        return [row[0] for row in cursor.fetchall()]
