"""Invoice, receipt and statement PDFs: an HTML template (inline CSS, A4) rendered by WeasyPrint.

WeasyPrint never touches the network: the only resources it may load are data: URIs
and this ISP's own logo file. MEDIA_ROOT holds every ISP's files, and an SVG logo can
name other files (<image href="../other-isp/logo.png">), so nothing else under it is
readable either. Fonts are the system's (fontconfig).
"""

from decimal import Decimal
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Q, Sum
from django.template.loader import render_to_string

from billing.ledger import statement
from billing.models import BillingSettings, Invoice, LedgerEntry

ZERO = Decimal("0.00")


class PdfError(ValueError):
    """A document that cannot be made (e.g. a receipt for something not a payment)."""


def identity(cfg: BillingSettings | None = None) -> dict:
    """Who issues the document: the ISP's legal name (or its name), contacts, KRA PIN,
    paybill and the logo's path relative to MEDIA_ROOT (only if the file is there)."""
    cfg = cfg or BillingSettings.load()
    tenant = getattr(connection, "tenant", None)
    logo = cfg.logo.name if cfg.logo and default_storage.exists(cfg.logo.name) else ""
    return {
        "name": cfg.legal_name or getattr(tenant, "name", ""),
        "address": cfg.address,
        "kra_pin": cfg.kra_pin,
        "paybill": cfg.paybill,
        "phone": cfg.phone,
        "email": cfg.email,
        "logo": logo,
    }


def invoice_html(invoice: Invoice) -> str:
    invoice = (
        Invoice.objects.select_related("customer", "service_account")
        .prefetch_related("lines")
        .get(pk=invoice.pk)
    )
    context = {
        "isp": identity(),
        "invoice": invoice,
        "customer": invoice.customer,
        "lines": list(invoice.lines.all()),
        "is_void": invoice.status == Invoice.Status.VOID,
    }
    return render_to_string("billing/pdf/invoice.html", context)


def invoice_pdf(invoice: Invoice) -> bytes:
    return render_pdf(invoice_html(invoice), files=_own_files())


def receipt_html(entry: LedgerEntry) -> str:
    if entry.kind != LedgerEntry.Kind.PAYMENT:
        raise PdfError("a receipt is only made for a payment")
    entry = LedgerEntry.objects.select_related("customer").get(pk=entry.pk)
    # The balance right after this payment: every entry up to it in ledger order.
    upto = Q(at__lt=entry.at) | Q(at=entry.at, id__lte=entry.id)
    after = (
        LedgerEntry.objects.filter(upto, customer_id=entry.customer_id).aggregate(s=Sum("amount"))[
            "s"
        ]
        or ZERO
    )
    context = {
        "isp": identity(),
        "entry": entry,
        "customer": entry.customer,
        "received": -entry.amount,
        "balance_after": after,
        "balance_after_abs": abs(after),
    }
    return render_to_string("billing/pdf/receipt.html", context)


def receipt_pdf(entry: LedgerEntry) -> bytes:
    return render_pdf(receipt_html(entry), files=_own_files())


# A statement shows this many of the latest entries, after a balance brought forward:
# a customer of ten years still gets a few pages, not a hundred.
STATEMENT_ROWS = 120


def statement_html(customer, *, at) -> str:
    """The customer's ledger as of `at`: the latest entries, oldest first, each with the
    running balance, and the balance brought forward from before them."""
    rows = [(entry, running) for entry, running in statement(customer) if entry.at <= at]
    shown = rows[-STATEMENT_ROWS:]
    brought_forward = rows[-len(shown) - 1][1] if len(rows) > len(shown) else None
    balance = rows[-1][1] if rows else ZERO
    context = {
        "isp": identity(),
        "customer": customer,
        "rows": shown,
        "brought_forward": brought_forward,
        "balance": balance,
        "balance_abs": abs(balance),
        "at": at,
    }
    return render_to_string("billing/pdf/statement.html", context)


def statement_pdf(customer, *, at) -> bytes:
    return render_pdf(statement_html(customer, at=at), files=_own_files())


def _own_files() -> tuple[str, ...]:
    """The files under MEDIA_ROOT this ISP's documents may show: its logo, if any."""
    logo = identity()["logo"]
    return (logo,) if logo else ()


def render_pdf(html: str, *, files: tuple[str, ...] = ()) -> bytes:
    """HTML to PDF bytes. Relative URLs (the logo) resolve under MEDIA_ROOT, and only
    `files` (paths relative to MEDIA_ROOT) may be loaded from there."""
    from weasyprint import HTML  # slow to import: only where a PDF is made

    media = Path(settings.MEDIA_ROOT).resolve()
    allowed = frozenset((media / name).resolve() for name in files)
    fetcher = _local_fetcher_class()(
        allowed, allowed_protocols={"data", "file"}, allow_redirects=False
    )
    return HTML(string=html, base_url=media.as_uri() + "/", url_fetcher=fetcher).write_pdf()


@cache
def _local_fetcher_class():
    from weasyprint.urls import URLFetcher

    class LocalOnlyFetcher(URLFetcher):
        """Loads data: URIs and the files it is given; refuses everything else (http,
        https, ftp, other files, other ISPs' media), so a document can neither call out
        nor read the disk, whatever the HTML or an SVG inside it names."""

        def __init__(self, allowed: frozenset[Path], *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.allowed = allowed

        def fetch(self, url, headers=None):
            scheme = url.split(":", 1)[0].lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = Path(url2pathname(urlsplit(url).path)).resolve()
                if path in self.allowed:
                    return super().fetch(url, headers)
            raise ValueError(f"documents may not load {url[:100]}")

    return LocalOnlyFetcher
