"""Reconciling the paybill against ispops: read an M-Pesa statement CSV (the org portal's
export), keep its completed payments in, and compare them receipt by receipt with the
M-Pesa payments ispops recorded over the same period.

The portal puts a preamble (account holder, short code, time period...) above the header
row, names its columns "Receipt No.", "Completion Time", "Details", "Transaction Status",
"Paid In", "Withdrawn", "Balance"..., writes amounts like "1,500.00" and times in Nairobi
time. Only rows that are Completed with money Paid In count: withdrawals and charges are
other business.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import Q

from ispops import audit
from ispops.lib.csvimport import CsvError, csv_rows
from payments import services
from payments.models import Payment, StatementUpload

NAIROBI = ZoneInfo("Africa/Nairobi")
CENT = Decimal("0.01")
MAX_BYTES = 5 * 1024 * 1024
HEADER_SEARCH_LINES = 60  # the preamble is a dozen lines; a header further down is not one
RECEIPT_RE = re.compile(r"^[A-Z0-9]{6,20}$")
# "Acc. C00012" (the portal's Details), or "Account No: C00012"
ACCOUNT_RE = re.compile(
    r"\bAcc\.\s*([A-Za-z0-9][\w-]*)|\bAccount(?:\s+No\.?|\s+Number)?\s*:\s*([A-Za-z0-9][\w-]*)",
    re.I,
)
PAYER_RE = re.compile(r"\bfrom\s+(\S+(?:\s+\*+\s+\d+)?)\s+-\s+(.+?)(?:\s+Acc\..*)?$", re.I)
PERIOD_RE = re.compile(r"from\s+(.+?)\s+to\s+(.+)$", re.I)
TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
)

# column -> the header names it goes by (compared lower case, spaces collapsed)
COLUMNS = {
    "receipt": ("receipt no.", "receipt no", "receipt number", "receipt"),
    "time": ("completion time", "completed time", "completion date"),
    "details": ("details", "description"),
    "status": ("transaction status", "status"),
    "paid_in": ("paid in", "paid in (ksh)", "paid in (kes)", "paid_in"),
    "withdrawn": ("withdrawn", "withdrawn (ksh)", "withdrawn (kes)"),
    "account": ("a/c no.", "a/c no", "account no.", "account number"),
}
REQUIRED = ("receipt", "time", "status", "paid_in")


class StatementError(ValueError):
    """The file is not a statement this page can read; str() says why."""


@dataclass
class Statement:
    rows: list[dict]  # [{"receipt", "amount", "at", "details"}], amounts and times as text
    period_start: datetime | None
    period_end: datetime | None
    total: Decimal
    skipped: int = 0  # rows that are not completed money in (withdrawals, failures...)


# --- reading the file -----------------------------------------------------------------


def parse_statement(data: bytes) -> Statement:
    """The completed payments in of a statement CSV, or StatementError with the reason."""
    if len(data) > MAX_BYTES:
        raise StatementError(f"the file is over {MAX_BYTES // (1024 * 1024)} MB")
    text = _decode(data)
    try:
        lines = [cells for _, cells in csv_rows(text)]
    except CsvError as exc:  # a runaway quote, an overlong cell
        raise StatementError(str(exc)) from None
    at = _header_index(lines)
    header = [_norm(cell) for cell in lines[at]]
    columns = {
        name: next((i for i, cell in enumerate(header) if cell in names), None)
        for name, names in COLUMNS.items()
    }
    period = _stated_period(lines[:at])

    rows: dict[str, dict] = {}
    problems: list[str] = []
    times: list[datetime] = []
    skipped = 0
    for number, cells in enumerate(lines[at + 1 :], start=at + 2):
        if not any(cell.strip() for cell in cells):
            continue

        def cell(name, cells=cells):
            index = columns[name]
            return cells[index].strip() if index is not None and index < len(cells) else ""

        receipt = cell("receipt").upper()
        if not receipt:  # totals and footer lines
            skipped += 1
            continue
        when = _time(cell("time"))
        if when is not None:
            times.append(when)
        paid_in = _money(cell("paid_in"))
        completed = cell("status").lower() == "completed"
        if not completed or (paid_in is not None and paid_in <= 0):
            skipped += 1
            continue
        reason = None
        if paid_in is None:
            reason = f"paid in {cell('paid_in')!r} is not an amount"
        elif when is None:
            reason = f"completion time {cell('time')!r} is not a date and time"
        elif not RECEIPT_RE.match(receipt):
            reason = f"receipt {receipt!r} is not an M-Pesa receipt number"
        if reason:
            problems.append(f"line {number}: {reason}")
            continue
        if receipt in rows:  # the same payment listed twice counts once
            skipped += 1
            continue
        details = cell("details")
        if cell("account") and not ACCOUNT_RE.search(details):
            details = f"{details} Acc. {cell('account')}".strip()
        rows[receipt] = {
            "receipt": receipt,
            "amount": str(paid_in),
            "at": when.isoformat(),
            "details": details[:255],
        }
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise StatementError("; ".join(problems[:5]) + more)

    start = min(times) if times else None
    end = max(times) if times else None
    if period:
        start = min(period[0], start) if start else period[0]
        end = max(period[1], end) if end else period[1]
    found = list(rows.values())
    total = sum((Decimal(row["amount"]) for row in found), Decimal("0.00"))
    return Statement(found, start, end, total, skipped)


def _decode(data: bytes) -> str:
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise StatementError("this is a spreadsheet, not a CSV file: export the statement as CSV")
    if data.startswith(b"%PDF"):
        raise StatementError("this is a PDF, not a CSV file: export the statement as CSV")
    if b"\x00" in data[:4096]:
        raise StatementError("this is not a CSV file (it holds binary data)")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise StatementError("this is not a CSV file (it is not text)")  # pragma: no cover


def _header_index(lines: list[list[str]]) -> int:
    for index, cells in enumerate(lines[:HEADER_SEARCH_LINES]):
        names = {_norm(cell) for cell in cells}
        if all(names & set(COLUMNS[name]) for name in REQUIRED):
            return index
    raise StatementError(
        "no header row found: the statement needs the columns Receipt No., Completion "
        "Time, Transaction Status and Paid In"
    )


def _stated_period(preamble: list[list[str]]) -> tuple[datetime, datetime] | None:
    """The preamble's "Time Period: From ... To ..." when there is one."""
    for cells in preamble:
        text = " ".join(cell.strip() for cell in cells if cell.strip())
        if "period" not in text.lower():
            continue
        match = PERIOD_RE.search(text)
        if match:
            start, end = _time(match.group(1)), _time(match.group(2))
            if start and end and start <= end:
                return start, end
    return None


def _norm(text: str) -> str:
    return " ".join(str(text).replace("\ufeff", "").split()).lower()


def _money(text: str) -> Decimal | None:
    """'1,500.00' -> Decimal('1500.00'); '' and '-' are nothing paid (zero)."""
    cleaned = text.replace(",", "").replace("KES", "").replace("Ksh", "").strip()
    if cleaned in ("", "-"):
        return Decimal("0.00")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None
    # Beyond what a paybill row can hold (and what the money columns store): unusable.
    if not amount.is_finite() or abs(amount) >= Decimal("1e10"):
        return None
    return amount.quantize(CENT)


def _time(text: str) -> datetime | None:
    text = " ".join(text.split())
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=NAIROBI)
        except ValueError:
            continue
    return None


def account_in(details: str) -> str:
    """The account number the payer typed, from Details like "... Acc. C00012"."""
    match = ACCOUNT_RE.search(details or "")
    return (match.group(1) or match.group(2)).upper()[:40] if match else ""


def payer_in(details: str) -> tuple[str, str]:
    """(msisdn as shown, name) from Details like "Pay Bill from 2547***149 - JANE DOE Acc. X"."""
    match = PAYER_RE.search(details or "")
    if not match:
        return "", ""
    return match.group(1)[:80], match.group(2).strip()[:150]


# --- storing and comparing ------------------------------------------------------------


def save_statement(statement: Statement, *, filename: str, actor) -> StatementUpload:
    _, label = audit.describe_actor(actor)
    return StatementUpload.objects.create(
        uploaded_by=label,
        filename=filename[:200],
        period_start=statement.period_start,
        period_end=statement.period_end,
        rows=statement.rows,
        total=statement.total,
    )


@dataclass
class Comparison:
    missing: list[dict] = field(default_factory=list)  # statement rows ispops lacks
    extra: list[Payment] = field(default_factory=list)  # ispops payments not in it
    # (statement row, payment, statement minus ispops)
    mismatched: list[tuple[dict, Payment, Decimal]] = field(default_factory=list)
    matched: int = 0
    matched_total: Decimal = Decimal("0.00")
    statement_total: Decimal = Decimal("0.00")
    ispops_total: Decimal = Decimal("0.00")

    @property
    def missing_total(self) -> Decimal:
        return sum((row["amount"] for row in self.missing), Decimal("0.00"))

    @property
    def extra_total(self) -> Decimal:
        return sum((p.amount for p in self.extra), Decimal("0.00"))

    @property
    def mismatch_difference(self) -> Decimal:
        """Statement minus ispops over the mismatched receipts."""
        return sum((difference for _, _, difference in self.mismatched), Decimal("0.00"))


def compare(upload: StatementUpload) -> Comparison:
    """Receipt by receipt: the statement's rows against the M-Pesa payments ispops holds
    that were paid within the statement's period, or that carry one of its receipts
    (a receipt typed in by hand is dated when it was typed)."""
    rows = {row["receipt"]: _shown(row) for row in upload.rows}
    in_period = Q(reference__in=list(rows))
    if upload.period_start and upload.period_end:
        in_period |= Q(paid_at__gte=upload.period_start, paid_at__lte=upload.period_end)
    payments = (
        Payment.objects.filter(in_period, method=Payment.Method.MPESA)
        .select_related("customer")
        .order_by("paid_at", "id")
    )
    result = Comparison(statement_total=upload.total)
    seen = set()
    for payment in payments:
        reference = payment.reference.upper()
        seen.add(reference)
        result.ispops_total += payment.amount
        row = rows.get(reference)
        if row is None:
            result.extra.append(payment)
        elif row["amount"] != payment.amount:
            result.mismatched.append((row, payment, row["amount"] - payment.amount))
        else:
            result.matched += 1
            result.matched_total += payment.amount
    result.missing = sorted(
        (row for receipt, row in rows.items() if receipt not in seen), key=lambda row: row["when"]
    )
    return result


def _shown(row: dict) -> dict:
    """A stored statement row with what the page shows: its time and account typed."""
    return {
        **row,
        "amount": Decimal(row["amount"]),
        "when": datetime.fromisoformat(row["at"]),
        "account": account_in(row["details"]),
    }


class RecordError(ValueError):
    """The receipt cannot be recorded from this statement; str() says why."""


def record_from_statement(upload: StatementUpload, receipt: str, *, actor) -> tuple[Payment, bool]:
    """Money the statement shows reached the paybill but ispops never heard of: store it
    as an M-Pesa payment and credit it (or leave it unmatched for finance to assign).
    Once per receipt: a second call, or a callback that arrives later, finds it stored."""
    receipt = (receipt or "").strip().upper()
    row = next((r for r in upload.rows if r["receipt"] == receipt), None)
    if row is None:
        raise RecordError(f"receipt {receipt or '(none)'} is not in this statement")
    msisdn, name = payer_in(row["details"])
    _, label = audit.describe_actor(actor)
    try:
        with transaction.atomic(), audit.acting_as(actor):
            payment = Payment.objects.create(
                method=Payment.Method.MPESA,
                reference=receipt,
                amount=Decimal(row["amount"]),
                paid_at=datetime.fromisoformat(row["at"]),
                account_reference=account_in(row["details"]),
                msisdn=msisdn,
                payer_name=name,
                state=Payment.State.RECEIVED,
                recorded_by=label,
                note=f"From the statement {upload.filename}"[:255],
            )
    except IntegrityError:
        existing = Payment.objects.get(method=Payment.Method.MPESA, reference=receipt)
        return existing, False
    with audit.acting_as(actor):
        services.credit_payment(payment.pk, actor=actor)
    payment.refresh_from_db()
    return payment, True
