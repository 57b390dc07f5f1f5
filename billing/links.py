"""Signed links to one customer document: an invoice, a payment's receipt or a
customer's statement, opened without signing in (the SMS that announces an invoice
carries one).

A token names the kind of document, its id and when it stops working; an HMAC over
those and the ISP's schema (keyed by SECRET_KEY, with a salt for this use only) makes
it unforgeable and ties it to one ISP: the same token is refused on any other ISP's
host. Nothing is stored, so a link works as often as it is opened until it expires
(SMS apps and link previews fetch links too: a single-use link would be used up by the
phone before the subscriber tapped it).

The token is short enough for an SMS: `i1kz.t8j2ab.` + 16 characters of MAC (96 bits),
about 30 characters in all. Its fields are base 36, its MAC base64url, joined by dots.
"""

import base64
import datetime
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from billing import pdf
from billing.models import Invoice, LedgerEntry
from ispops.lib.urls import absolute_url
from ispops.tenancy.models import Domain
from subscribers.models import Customer

INVOICE, RECEIPT, STATEMENT = "invoice", "receipt", "statement"
CODES = {INVOICE: "i", RECEIPT: "r", STATEMENT: "s"}
KINDS = {code: kind for kind, code in CODES.items()}

# How long a link works after it is made. An invoice's link outlives its due date; a
# statement shows the ledger as it is when opened, so its link is short-lived.
LIFETIMES = {
    INVOICE: datetime.timedelta(days=30),
    RECEIPT: datetime.timedelta(days=90),
    STATEMENT: datetime.timedelta(days=7),
}

SALT = "ispops.billing.links.document"
# 96 bits: a link is tried online, one request at a time, and every character counts
# in an SMS.
MAC_BYTES = 12
# kind code + id, expiry (unix seconds, 7 digits reach past the year 4000, inside
# what datetime takes), MAC: base 36 and base64url, bounded.
TOKEN = re.compile(r"([irs])([0-9a-z]{1,13})\.([0-9a-z]{1,7})\.([A-Za-z0-9_-]{16})")


class LinkError(Exception):
    """A token that opens nothing: malformed, altered or of another ISP."""


class LinkExpired(LinkError):
    """A genuine token whose time is over."""

    def __init__(self, ref: "DocumentRef"):
        super().__init__(f"the link expired at {ref.expires_at:%Y-%m-%d %H:%M} UTC")
        self.ref = ref


@dataclass(frozen=True)
class DocumentRef:
    """What a valid token names: one document of this ISP."""

    kind: str
    pk: int
    expires_at: datetime.datetime


def make_token(kind: str, pk: int, *, at: datetime.datetime, schema: str | None = None) -> str:
    """A token for document `kind` number `pk` of ISP `schema` (default: the current
    one), valid from `at` for the kind's lifetime."""
    if kind not in CODES:
        raise ValueError(f"no document kind {kind!r}")
    if int(pk) <= 0:
        raise ValueError(f"no document id {pk!r}")
    expires = int((at + LIFETIMES[kind]).timestamp())
    body = f"{CODES[kind]}{_b36(int(pk))}.{_b36(expires)}"
    return f"{body}.{_mac(_schema(schema), body, settings.SECRET_KEY)}"


def check_token(token: str, *, at: datetime.datetime, schema: str | None = None) -> DocumentRef:
    """The document a token names, if it was made for ISP `schema` (default: the
    current one) and has not been altered; LinkExpired once its time is over (only
    said of genuine tokens, so a forger learns nothing); LinkError otherwise."""
    match = TOKEN.fullmatch(token or "")
    if match is None:
        raise LinkError("not a document link")
    code, pk36, expires36, mac = match.groups()
    body = token[: -len(mac) - 1]
    schema = _schema(schema)
    # Old keys still open the links they made while a new SECRET_KEY rolls out.
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not any(constant_time_compare(mac, _mac(schema, body, key)) for key in keys):
        raise LinkError("the link's signature does not match")
    ref = DocumentRef(
        kind=KINDS[code],
        pk=int(pk36, 36),
        expires_at=datetime.datetime.fromtimestamp(int(expires36, 36), tz=datetime.UTC),
    )
    if at >= ref.expires_at:
        raise LinkExpired(ref)
    return ref


def document_path(kind: str, pk: int, *, at: datetime.datetime) -> str:
    return reverse("document_link", kwargs={"signed": make_token(kind, pk, at=at)})


def document_url(kind: str, pk: int, *, at: datetime.datetime, host: str | None = None) -> str:
    """The absolute link to a document on this ISP's own host, for an SMS or email
    (scheme and port from PUBLIC_SCHEME / PUBLIC_PORT, as other links sent out), or ""
    if the ISP has no host yet: no link beats one that leads nowhere. `host`: the
    ISP's host (public_host()) when many links are made at once."""
    host = host if host is not None else public_host()
    return absolute_url(document_path(kind, pk, at=at), host=host) if host else ""


def public_host() -> str:
    """This ISP's primary host name, or "" if it has none yet."""
    # By schema, not connection.tenant: under schema_context() that is a stand-in
    # without domains.
    return (
        Domain.objects.filter(tenant__schema_name=_schema(None), is_primary=True)
        .values_list("domain", flat=True)
        .first()
    ) or ""


def _schema(schema: str | None) -> str:
    schema = schema or connection.schema_name
    if not schema or schema == "public":
        # The platform has no customer documents: never sign or open one there.
        raise LinkError("document links belong to an ISP")
    return schema


def _mac(schema: str, body: str, key: str) -> str:
    digest = salted_hmac(SALT, f"{schema}/{body}", secret=key, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:MAC_BYTES]).decode().rstrip("=")


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


# --- the document a link opens -------------------------------------------------------


class DocumentGone(LinkError):
    """A genuine token whose document no longer exists (or is not of its kind)."""


@dataclass(frozen=True)
class Document:
    filename: str  # without ".pdf"
    content: bytes


def render_document(ref: DocumentRef, *, at: datetime.datetime) -> Document:
    """The one PDF a token names: the invoice, the payment's receipt or the customer's
    statement as of `at`; DocumentGone if it is not there."""
    if ref.kind == INVOICE:
        invoice = Invoice.objects.filter(pk=ref.pk).first()
        if invoice is None:
            raise DocumentGone("no such invoice")
        return Document(_filename(invoice.number), pdf.invoice_pdf(invoice))
    if ref.kind == RECEIPT:
        entry = LedgerEntry.objects.filter(pk=ref.pk, kind=LedgerEntry.Kind.PAYMENT).first()
        if entry is None:
            raise DocumentGone("no such payment")
        return Document(_filename(f"receipt-{entry.reference or entry.pk}"), pdf.receipt_pdf(entry))
    customer = Customer.objects.filter(pk=ref.pk).first()
    if customer is None:
        raise DocumentGone("no such customer")
    return Document(
        _filename(f"statement-{customer.account}-{at:%Y-%m-%d}"),
        pdf.statement_pdf(customer, at=at),
    )


def _filename(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]
