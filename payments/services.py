"""Payment operations: taking in Safaricom's callbacks (stored raw first), turning them
into one payment per receipt, matching payments to customers, crediting them through the
billing ledger (which restores a settled subscriber in the same transaction), STK push
requests, manual payments, reversals and the sweep that finishes whatever was left.

The web request only stores the raw callback and its payment row (unique on the
receipt), in one transaction. Crediting runs in a worker; if Redis is down when the
payment is stored, the sweep credits it when Redis is back. Every step is safe to run
twice.
"""

import hashlib
import ipaddress
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from ispops import audit
from ispops.lib.phones import InvalidPhone, normalise_phone
from payments import purposes
from payments.daraja import Daraja, DarajaError
from payments.models import Callback, MpesaSettings, Payment, ReceiptCounter, StkRequest

log = logging.getLogger(__name__)
security_log = logging.getLogger("ispops.security")

NAIROBI = ZoneInfo("Africa/Nairobi")
MAX_BODY = 16 * 1024  # a real callback is under 2 KB
# A real callback nests 6 deep (Body.stkCallback.CallbackMetadata.Item[].{}); deeper
# bodies are refused before the parser's recursion can be spent on them.
MAX_DEPTH = 10
# Digits in a JSON number: Safaricom's longest is a 14-digit timestamp. Longer ones
# would only cost time to convert and could never be a usable amount.
MAX_NUMBER_DIGITS = 30
CENT = Decimal("0.01")
STALE_PAYMENT = timedelta(seconds=30)
STALE_CALLBACK = timedelta(minutes=1)
STK_FIRST_QUERY = timedelta(minutes=2)
STK_GIVE_UP = timedelta(hours=2)
MAX_STK_AMOUNT = 250_000
RECEIPT = re.compile(r"[A-Z0-9]{6,20}")

audit.register(
    MpesaSettings, secret=["consumer_key", "consumer_secret", "passkey", "callback_token"]
)
# Payments are not audited by signal: one arrives with every callback (the callback is
# its record). What staff do to a payment (record, assign, reverse) is audited below.


class PaymentError(ValueError):
    """An operation the rules refuse; str() is the reason."""


class BadCallback(ValueError):
    """A callback body we cannot use; str() is the reason given back (HTTP 400)."""


# --- settings and URLs ------------------------------------------------------------------


def callback_paths(cfg: MpesaSettings) -> dict[str, str]:
    token = cfg.callback_token
    return {
        "validation": reverse("payments:c2b_validation", args=[token]),
        "confirmation": reverse("payments:c2b_confirmation", args=[token]),
        "stk": reverse("payments:stk_callback", args=[token]),
    }


def callback_urls(cfg: MpesaSettings) -> dict[str, str]:
    """The full URLs Safaricom calls, on the ISP's public address."""
    if not cfg.public_url:
        raise PaymentError("set the public URL (the address Safaricom calls back) first")
    base = cfg.public_url.rstrip("/")
    return {name: base + path for name, path in callback_paths(cfg).items()}


def configure(*, actor, **fields) -> MpesaSettings:
    """Store Daraja settings (the command and the settings page both come here)."""
    cfg = MpesaSettings.load()
    for name, value in fields.items():
        if value is not None:
            setattr(cfg, name, value)
    cfg.full_clean()
    with audit.acting_as(actor):
        cfg.save()
    return cfg


def new_token(*, actor) -> MpesaSettings:
    """Replace the callback token (the old URLs stop working; register the new ones)."""
    from payments.models import new_callback_token

    cfg = MpesaSettings.load()
    cfg.callback_token = new_callback_token()
    with audit.acting_as(actor):
        cfg.save()
    return cfg


def register_c2b_urls(*, actor) -> dict:
    cfg = MpesaSettings.load()
    urls = callback_urls(cfg)
    reply = Daraja(cfg).register_c2b_urls(
        confirmation_url=urls["confirmation"], validation_url=urls["validation"]
    )
    cfg.urls_registered_at = timezone.now()
    cfg.urls_registered_reply = json.dumps(reply)[:2000]
    cfg.save(update_fields=["urls_registered_at", "urls_registered_reply"])
    log.info("C2B URLs registered for shortcode %s by %s", cfg.shortcode, actor)
    return reply


def source_allowed(allowed_ips: str, ip: str | None) -> bool:
    """The optional allowlist: empty allows all; otherwise addresses or networks."""
    entries = [line.strip() for line in allowed_ips.splitlines() if line.strip()]
    if not entries:
        return True
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    for entry in entries:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


# --- taking callbacks in ------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of a callback: its state, why it failed, the payment it is about and,
    for a validation, the answer Safaricom gets."""

    state: str
    error: str = ""
    payment_id: int | None = None
    reply: dict | None = None
    bad_request: bool = False  # the body itself is unusable: HTTP 400


# The answer to a callback stored raw but not taken (the sweep takes it again). Money
# reported by a confirmation or STK callback is safe in our database, and a retry
# would bring the same body, so Safaricom is told it arrived, though not "Accepted".
# A validation is refused instead: no money has moved yet, and none should until we
# can read what the payer sent.
STORED_RAW = {"ResultCode": 0, "ResultDesc": "Received, stored for review"}
VALIDATION_NOT_TAKEN = {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}


def callback_access() -> tuple[str, str] | None:
    """(token, allowlist) of this ISP, without loading (and decrypting) the secrets."""
    return MpesaSettings.objects.filter(pk=1).values_list("callback_token", "allowed_ips").first()


def receive(kind: str, body: bytes, headers: dict, source_ip: str | None) -> Outcome:
    """Take a callback in. The raw request is stored in the transaction that stores its
    payment; if taking it fails in any way, the raw request is still stored (on its
    own): as failed when the body is unusable, else as received, for the sweep to take
    again."""
    try:
        data = parse_json(body)
        with transaction.atomic():
            outcome = take(kind, data)
            store_callback(kind, body, headers, source_ip, outcome)
        return outcome
    except BadCallback as exc:
        outcome = Outcome(Callback.State.FAILED, str(exc), bad_request=True)
    except Exception as exc:  # stored for the sweep; Safaricom need not send it again
        log.exception("M-Pesa %s callback stored but not taken", kind)
        reply = VALIDATION_NOT_TAKEN if kind == Callback.Kind.VALIDATION else STORED_RAW
        error = f"{type(exc).__name__}: {exc}"[:2000]
        outcome = Outcome(Callback.State.RECEIVED, error, reply=reply)
    store_callback(kind, body, headers, source_ip, outcome)
    return outcome


def store_callback(kind, body: bytes, headers: dict, source_ip, outcome: Outcome) -> Callback:
    """Store the request as it came, or as close as PostgreSQL allows: bytes that are
    not UTF-8 and NUL characters (which no text column takes) are written as
    backslash escapes, so a callback is never lost to its own content."""
    return Callback.objects.create(
        kind=kind,
        body=storable_body(body),
        headers={str(k): storable(str(v)) for k, v in headers.items()},
        source_ip=source_ip,
        state=outcome.state,
        error=storable(outcome.error),
        payment_id=outcome.payment_id,
    )


def storable_body(body: bytes) -> str:
    """The body as text: UTF-8 as it is, other bytes and NUL as backslash escapes."""
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def storable(text: str) -> str:
    """Text PostgreSQL takes: no NUL, no lone surrogate (from a JSON "\\ud800")."""
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")


def take(kind: str, data: dict) -> Outcome:
    if kind == Callback.Kind.CONFIRMATION:
        return take_confirmation(data)
    if kind == Callback.Kind.STK:
        return take_stk_callback(data)
    return validate_c2b(data)


def parse_json(body: bytes) -> dict:
    """The body as a JSON object, strictly: UTF-8, at most MAX_DEPTH deep, numbers of
    sane length, no NaN or Infinity. Strings come back storable (a NUL, which
    PostgreSQL refuses in any query, becomes U+FFFD), so a payer name with a NUL
    still makes a payment and an id with one fails to match instead of failing."""
    if len(body) > MAX_BODY:
        raise BadCallback(f"body over {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCallback("body is not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise BadCallback(f"body nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_no_constant)
    except BadCallback:
        raise
    except (ValueError, RecursionError):
        raise BadCallback("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadCallback("body is not a JSON object")
    return _storable_json(data)


def _depth(text: str) -> int:
    """How deep the JSON text nests, counted without parsing (brackets in strings do
    not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise BadCallback(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(digits)


def _float(digits: str) -> float:
    value = float(digits) if len(digits) <= MAX_NUMBER_DIGITS + 10 else float("inf")
    if not math.isfinite(value):
        raise BadCallback("a number is too long or too large")
    return value


def _no_constant(name: str):
    raise BadCallback(f"{name} is not a JSON number")


def _storable_json(value):
    """The parsed body with every string (keys too) storable; depth is bounded."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(k): _storable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable_json(v) for v in value]
    return value


def find_customer(reference: str):
    """The customer an account reference names: their account number (any case and
    spacing), else the username of one of their live service accounts."""
    from subscribers.models import Customer, ServiceAccount
    from subscribers.services import normalise_account

    ref = normalise_account(str(reference or ""))
    if not ref:
        return None
    # Account numbers are stored normalised (subscribers.services.normalise_account).
    customer = Customer.objects.filter(account=ref).first()
    if customer is None:
        account = (
            ServiceAccount.objects.filter(username__iexact=ref)
            .exclude(status="terminated")
            .select_related("customer")
            .first()
        )
        customer = account.customer if account else None
    return customer


def customer_by_phone(raw: str):
    """The one customer with this phone, when the payload carries a usable number (not
    hashed or masked) and exactly one customer has it."""
    from subscribers.models import Customer

    try:
        phone = normalise_phone(str(raw or ""))
    except InvalidPhone:
        return None
    found = list(Customer.objects.filter(Q(phone=phone) | Q(alt_phone=phone))[:2])
    return found[0] if len(found) == 1 else None


MASKED_MSISDN = re.compile(r"\+?(\d{3,})\*+(\d{3,})")
HASHED_MSISDN = re.compile(r"[0-9a-f]{64}")


def payer_phone_matches(msisdn: str, phone: str) -> bool:
    """Whether the payer M-Pesa reported can be `phone` (any Kenyan form). M-Pesa sends
    the MSISDN in full (old C2B, STK), masked ("2547 ***** 149", C2B v2 and the
    statement's Details) or as the SHA-256 of 2547... (C2B v1): a full number must be
    that phone, a masked one must show that phone's first and last digits, a hash must
    be that phone's. Anything else, an empty one included, does not match."""
    try:
        phone = normalise_phone(str(phone or ""))
    except InvalidPhone:
        return False
    reported = "".join(str(msisdn or "").split())
    if HASHED_MSISDN.fullmatch(reported.lower()):
        return reported.lower() == hashlib.sha256(phone.encode()).hexdigest()
    masked = MASKED_MSISDN.fullmatch(reported)
    if masked:
        head, tail = masked.groups()
        head = "254" + head[1:] if head.startswith("0") else head
        return phone.startswith(head) and phone.endswith(tail)
    try:
        return normalise_phone(reported) == phone
    except InvalidPhone:
        return False


def validate_c2b(data: dict) -> Outcome:
    """Accept or refuse a paybill payment before it happens, by its account number."""
    reject_unknown = (
        MpesaSettings.objects.filter(pk=1).values_list("reject_unknown_accounts", flat=True).first()
    )
    if _amount(data.get("TransAmount")) is None:
        code = "C2B00013"  # invalid amount
    elif reject_unknown and find_customer(data.get("BillRefNumber")) is None:
        code = "C2B00012"  # invalid account number
    else:
        code = "0"
    reply = {"ResultCode": code, "ResultDesc": "Accepted" if code == "0" else "Rejected"}
    state = Callback.State.PROCESSED if code == "0" else Callback.State.REJECTED
    return Outcome(state, "" if code == "0" else code, reply=reply)


def take_confirmation(data: dict) -> Outcome:
    """A C2B confirmation: the payment row, once per TransID; credited by a worker."""
    receipt = str(data.get("TransID") or "").strip().upper()
    amount = _amount(data.get("TransAmount"))
    if not RECEIPT.fullmatch(receipt):
        raise BadCallback("TransID missing or malformed")
    if amount is None:
        raise BadCallback("TransAmount missing or not a positive amount")
    names = (str(data.get(k) or "") for k in ("FirstName", "MiddleName", "LastName"))
    fields = {
        "method": Payment.Method.MPESA,
        "reference": receipt,
        "amount": amount,
        "account_reference": str(data.get("BillRefNumber") or "")[:40],
        "msisdn": str(data.get("MSISDN") or "")[:80],
        "payer_name": " ".join(n.strip() for n in names if str(n).strip())[:150],
        "paid_at": _mpesa_time(data.get("TransTime")),
        "via_c2b": True,
    }
    payment_id, created = _store_payment(fields)
    if not created:
        Payment.objects.filter(pk=payment_id, via_c2b=False).update(via_c2b=True)
    return Outcome(Callback.State.PROCESSED, "" if created else "repeat", payment_id)


def take_stk_callback(data: dict) -> Outcome:
    """The end of an STK push: failure recorded on the request, success stored as the
    payment of its receipt (once, even if the C2B confirmation reported it already)."""
    try:
        body = data["Body"]["stkCallback"]
        checkout = str(body["CheckoutRequestID"])
        code = str(body["ResultCode"])
    except (KeyError, TypeError):
        raise BadCallback(
            "Body.stkCallback with CheckoutRequestID and ResultCode expected"
        ) from None
    stk = StkRequest.objects.filter(checkout_request_id=checkout).first()
    if stk is None and code == "0":
        # Money moved but the request is unknown (its reply timed out before it was
        # saved): keep the payment. The worker matches it by the payer's phone if one
        # customer has it, else it waits in the unmatched queue.
        security_log.warning("paid STK callback for unknown CheckoutRequestID %s", checkout)
        receipt, amount, items = _stk_receipt(body)
        fields = {
            "method": Payment.Method.MPESA,
            "reference": receipt,
            "amount": amount,
            "msisdn": str(items.get("PhoneNumber") or "")[:80],
            "paid_at": _mpesa_time(items.get("TransactionDate")),
            "via_stk": True,
        }
        payment_id, _ = _store_payment(fields)
        return Outcome(Callback.State.PROCESSED, "unknown CheckoutRequestID", payment_id)
    if stk is None:
        security_log.warning("STK callback for unknown CheckoutRequestID %s", checkout)
        return Outcome(Callback.State.FAILED, f"unknown CheckoutRequestID {checkout}")
    desc = str(body.get("ResultDesc") or "")[:255]
    if code != "0":
        StkRequest.objects.filter(pk=stk.pk, state=StkRequest.State.PENDING).update(
            state=StkRequest.State.FAILED,
            result_code=code,
            result_desc=desc,
            finished_at=timezone.now(),
        )
        return Outcome(Callback.State.PROCESSED)
    receipt, amount, items = _stk_receipt(body)
    fields = {
        "method": Payment.Method.MPESA,
        "reference": receipt,
        "amount": amount,
        "customer_id": stk.customer_id,
        "matched_by": "stk",
        "account_reference": stk.account_reference,
        "msisdn": str(items.get("PhoneNumber") or stk.phone)[:80],
        "paid_at": _mpesa_time(items.get("TransactionDate")),
        "via_stk": True,
        "stk_request": stk,
    }
    payment_id, created = _store_payment(fields)
    if not created:
        Payment.objects.filter(pk=payment_id).update(via_stk=True, stk_request=stk)
        # The C2B confirmation came first and matched nobody (a till has no account
        # number): the STK request says whose it is.
        unmatched = Payment.objects.filter(pk=payment_id, state=Payment.State.UNMATCHED)
        if unmatched.update(
            state=Payment.State.RECEIVED, customer_id=stk.customer_id, matched_by="stk"
        ):
            transaction.on_commit(lambda: credit_soon(payment_id))
    StkRequest.objects.filter(pk=stk.pk).exclude(state=StkRequest.State.PAID).update(
        state=StkRequest.State.PAID,
        result_code=code,
        result_desc=desc,
        receipt=receipt,
        finished_at=timezone.now(),
    )
    return Outcome(Callback.State.PROCESSED, "" if created else "repeat", payment_id)


def _stk_receipt(body: dict) -> tuple[str, Decimal, dict]:
    """(receipt, amount, items) of a successful STK callback, or BadCallback."""
    items = _items(body.get("CallbackMetadata"))
    receipt = str(items.get("MpesaReceiptNumber") or "").strip().upper()
    amount = _amount(items.get("Amount"))
    if not RECEIPT.fullmatch(receipt) or amount is None:
        raise BadCallback("CallbackMetadata lacks a usable MpesaReceiptNumber or Amount")
    return receipt, amount, items


def _store_payment(fields: dict) -> tuple[int, bool]:
    """Insert the payment unless its receipt is known (the caller's transaction); have a
    worker credit it after commit. Returns (payment id, created)."""
    try:
        with transaction.atomic():  # a savepoint: a repeat must not spoil the transaction
            payment = Payment.objects.create(**fields)
    except IntegrityError:
        existing = Payment.objects.filter(
            method=Payment.Method.MPESA, reference=fields["reference"]
        )
        return existing.values_list("pk", flat=True).get(), False
    transaction.on_commit(lambda: credit_soon(payment.pk))
    return payment.pk, True


def credit_soon(payment_id: int) -> None:
    """Hand the payment to a worker. If Redis is down it stays stored, and the sweep
    credits it when Redis is back."""
    from ispops.tasks import hand_to_worker
    from payments.tasks import credit_payment_task

    hand_to_worker(credit_payment_task, payment_id, what=f"payment {payment_id}")


def _items(metadata) -> dict:
    """CallbackMetadata.Item as {Name: Value}, read by name (Balance comes and goes)."""
    items = (metadata or {}).get("Item") if isinstance(metadata, dict) else None
    if isinstance(items, dict):
        items = [items]
    return {
        str(item.get("Name")): item.get("Value")
        for item in items or []
        if isinstance(item, dict) and "Name" in item
    }


def _amount(value) -> Decimal | None:
    try:
        amount = Decimal(str(value).strip()).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount <= 0 or amount > Decimal("10000000"):
        return None
    return amount


def _mpesa_time(value) -> datetime:
    """M-Pesa's YYYYMMDDHHmmss in Nairobi time (string in C2B, number in STK)."""
    try:
        return datetime.strptime(str(value).strip(), "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    except (ValueError, TypeError):
        return timezone.now()


# --- crediting ------------------------------------------------------------------------------


def credit_payment(payment_id: int, *, actor="M-Pesa") -> str:
    """Match a stored payment to its customer and credit it, in one transaction with the
    restoration it causes. Safe to run twice and from two workers at once."""
    with transaction.atomic():
        # Wait for the row rather than skip it: the lock may be a callback marking the
        # payment "also via C2B", and skipping would leave it uncredited until the sweep.
        # A second worker waits here, then finds it credited.
        payment = (
            Payment.objects.select_for_update()
            .filter(pk=payment_id, state=Payment.State.RECEIVED)
            .first()
        )
        if payment is None:
            return "nothing to do"
        stk = payment.stk_request or _purpose_push(payment)
        if stk is not None and stk.purpose:
            if payment.stk_request_id is None:
                payment.stk_request = stk
                payment.save(update_fields=["stk_request"])
            _use_for_purpose(payment, stk.purpose)
            return "credited"
        customer, how = _match(payment)
        if customer is None:
            Payment.objects.filter(pk=payment.pk).update(
                state=Payment.State.UNMATCHED, attempts=F("attempts") + 1
            )
            log.info("payment %s (%s) is unmatched", payment.reference, payment.account_reference)
            return "unmatched"
        _credit(payment, customer, how=how, actor=actor)
    return "credited"


def _purpose_push(payment: Payment) -> StkRequest | None:
    """The push for a purpose whose AccountReference this payment carries: an STK
    payment to a paybill is also reported by a C2B confirmation, which may come first
    or alone (its callback lost). Such a payment is that push's, never a customer's
    found by the payer's phone. Pushes with a customer count too (a data top-up is the
    customer's money but buys the pack, not credit); a push already paid never takes a
    second payment."""
    if not payment.account_reference:
        return None
    return (
        StkRequest.objects.filter(
            account_reference__iexact=payment.account_reference.strip(), payments__isnull=True
        )
        .exclude(purpose="")
        .order_by("-created_at")
        .first()
    )


def _use_for_purpose(payment: Payment, purpose: str) -> None:
    """Inside the caller's transaction, the payment locked and "received": hand it to
    its purpose (once: it leaves "received" here), no customer's ledger touched."""
    purposes.get(purpose).on_paid(payment)
    payment.matched_by = purpose
    payment.state = Payment.State.CREDITED
    payment.credited_at = timezone.now()
    payment.save(update_fields=["matched_by", "state", "credited_at"])


def _match(payment: Payment):
    if payment.customer_id:
        return payment.customer, payment.matched_by or "stk"
    if payment.stk_request_id:  # its STK callback came while the C2B one waited here
        return payment.stk_request.customer, "stk"
    customer = find_customer(payment.account_reference)
    if customer is not None:
        return customer, "account"
    customer = customer_by_phone(payment.msisdn)
    if customer is not None:
        return customer, "phone"
    return None, ""


def _credit(payment: Payment, customer, *, how: str, actor) -> None:
    """Inside the caller's transaction: ledger, allocation, restoration, receipt SMS.
    A payment with our own receipt number has it as the ledger entry's reference (what
    statements and receipts show); a slip typed with it goes in the description."""
    from ispops.messaging import services as messaging

    receipt = payment.receipt_number or payment.reference
    description = f"{payment.get_method_display()} payment {receipt}"
    if payment.receipt_number and payment.reference != payment.receipt_number:
        description += f" (ref {payment.reference})"
    entry = billing.record_payment(
        customer,
        payment.amount,
        actor=actor,
        reference=receipt,
        description=description[:255],
    )
    payment.customer = customer
    payment.matched_by = how
    payment.ledger_entry = entry
    payment.state = Payment.State.CREDITED
    payment.credited_at = timezone.now()
    payment.save(update_fields=["customer", "matched_by", "ledger_entry", "state", "credited_at"])
    balance = billing.customer_balance(customer)
    messaging.notify(
        customer,
        "payment_received",
        {
            "amount": f"KES {payment.amount:,.2f}",
            "receipt": receipt,
            "balance": f"KES {balance:,.2f}",
        },
        related=f"payment:{payment.pk}",
    )


def assign_payment(payment: Payment, customer, *, actor, how: str = "staff") -> Payment:
    """Finance puts an unmatched payment on a customer: credited at once. `how` is
    recorded as what matched it ("claim": the subscriber claimed it by its code in the
    portal, portal.claims)."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.state != Payment.State.UNMATCHED:
            state = locked.get_state_display().lower()
            raise PaymentError(f"payment {locked.reference} is {state}, not unmatched")
        _credit(locked, customer, how=how, actor=actor)
        audit.record(
            locked,
            "update",
            {"state": ["unmatched", "credited"], "customer": [None, customer.account]},
            actor=actor,
        )
    return locked


def next_receipt_number() -> str:
    """Our next cash receipt number (RC-000123), taken inside the caller's transaction:
    the counter row stays locked until it commits, so numbers are consecutive under
    concurrency, and a rollback gives the number back (no gaps)."""
    ReceiptCounter.objects.get_or_create(pk=1)
    counter = ReceiptCounter.objects.select_for_update().get(pk=1)
    number = counter.next_number
    ReceiptCounter.objects.filter(pk=1).update(next_number=F("next_number") + 1)
    return f"RC-{number:06d}"


def record_manual_payment(customer, *, method: str, amount, reference: str, actor, note=""):
    """Cash, bank transfer, cheque (or an M-Pesa receipt typed in by hand): stored and
    credited at once. A reference is taken once per customer (once at all for M-Pesa).
    Cash gets our own receipt number (next_receipt_number); its slip reference is
    optional."""
    reference = (reference or "").strip()
    reference = reference.upper() if method == Payment.Method.MPESA else reference
    if not reference and method != Payment.Method.CASH:
        raise PaymentError("a reference (slip, cheque or receipt number) is required")
    amount = _amount(amount)
    if amount is None:
        raise PaymentError("the amount must be above zero")
    _, label = audit.describe_actor(actor)
    try:
        with transaction.atomic():
            receipt = next_receipt_number() if method == Payment.Method.CASH else ""
            payment = Payment.objects.create(
                method=method,
                reference=reference or receipt,
                receipt_number=receipt,
                amount=amount,
                customer=customer,
                matched_by="staff",
                recorded_by=label,
                note=note[:255],
            )
            _credit(payment, customer, how="staff", actor=actor)
            audit.record(
                payment,
                "create",
                {
                    "method": method,
                    "reference": payment.reference,
                    "receipt_number": receipt,
                    "amount": str(amount),
                    "customer": customer.account,
                },
                actor=actor,
            )
    except IntegrityError:
        raise PaymentError(f"reference {reference} is already recorded") from None
    except billing.BillingError as exc:
        raise PaymentError(str(exc)) from None
    return payment


def reverse_payment(payment: Payment, *, actor, reason: str) -> Payment:
    """Take a credited payment back off the ledger (a bounced cheque, a payment put on
    the wrong customer): it stays on record, marked reversed with who and why."""
    reason = (reason or "").strip()
    if not reason:
        raise PaymentError("a reason is required to reverse a payment")
    _, label = audit.describe_actor(actor)
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.state != Payment.State.CREDITED:
            raise PaymentError(
                f"only a credited payment can be reversed; this one is "
                f"{locked.get_state_display().lower()}"
            )
        billing.reverse_payment_entry(locked.ledger_entry, actor=actor, reason=reason)
        locked.state = Payment.State.REVERSED
        locked.reversed_at = timezone.now()
        locked.reversed_by = label
        locked.reversal_reason = reason[:255]
        locked.save(update_fields=["state", "reversed_at", "reversed_by", "reversal_reason"])
        audit.record(
            locked, "update", {"state": ["credited", "reversed"], "reason": reason}, actor=actor
        )
    return locked


# --- STK push ------------------------------------------------------------------------------


def stk_amount(amount) -> int:
    """Daraja takes whole shillings: cents are rounded up so the bill is covered."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise PaymentError("the amount must be a number") from None
    if not value.is_finite():
        raise PaymentError("the amount must be a number")
    whole = int(value.to_integral_value(rounding=ROUND_CEILING))
    if not 1 <= whole <= MAX_STK_AMOUNT:
        raise PaymentError(f"the amount must be between KES 1 and KES {MAX_STK_AMOUNT:,}")
    return whole


def start_stk_push(
    customer,
    *,
    phone: str,
    amount,
    actor,
    source=StkRequest.Source.STAFF,
    purpose: str = "",
    account_reference: str = "",
):
    """Send a payment prompt to `phone` for `customer`'s account; the request is tracked
    until its callback (or the query that replaces a lost one). With no customer, a
    registered `purpose` (payments.purposes) and the `account_reference` shown in the
    prompt say what the money is for."""
    if customer is None:
        purposes.get(purpose)  # LookupError: a push nobody could use
        if not account_reference:
            raise PaymentError("a push without a customer needs an account reference")
    reference = (account_reference or customer.account)[:12]
    cfg = MpesaSettings.load()
    try:
        phone = normalise_phone(phone)
    except InvalidPhone as exc:
        raise PaymentError(str(exc)) from None
    whole = stk_amount(amount)
    if not cfg.configured:
        raise PaymentError("M-Pesa is not set up for this ISP yet")
    url = callback_urls(cfg)["stk"]
    _, label = audit.describe_actor(actor)
    stk = StkRequest.objects.create(
        customer=customer,
        phone=phone,
        amount=whole,
        account_reference=reference,
        source=source,
        purpose=purpose,
        started_by=label,
        next_query_at=timezone.now() + STK_FIRST_QUERY,
    )
    try:
        reply = Daraja(cfg).stk_push(
            phone=phone,
            amount=whole,
            account_reference=reference,
            callback_url=url,
            desc="Internet",
        )
    except DarajaError as exc:
        StkRequest.objects.filter(pk=stk.pk).update(
            state=StkRequest.State.ERROR, result_desc=str(exc)[:255], finished_at=timezone.now()
        )
        raise PaymentError(str(exc)) from None
    StkRequest.objects.filter(pk=stk.pk).update(
        merchant_request_id=str(reply.get("MerchantRequestID") or "")[:64],
        checkout_request_id=str(reply.get("CheckoutRequestID") or "")[:64] or None,
    )
    stk.refresh_from_db()
    return stk


def query_stk(stk: StkRequest) -> StkRequest:
    """No callback yet: ask Daraja. Pending (its HTTP 500) means ask again later; a
    failure ends the request; success without a callback waits for the receipt (the C2B
    confirmation or the statement), since only the receipt can be credited once."""
    now = timezone.now()
    try:
        result = Daraja(MpesaSettings.load()).stk_query(stk.checkout_request_id)
    except DarajaError as exc:
        result = None
        log.warning("STK query for %s failed: %s", stk.checkout_request_id, exc)
    fields = {"queries": F("queries") + 1}
    if result is None or result.pending:
        if now - stk.created_at > STK_GIVE_UP:
            fields.update(
                state=StkRequest.State.FAILED,
                result_desc="No answer from M-Pesa",
                finished_at=now,
            )
        else:
            wait = min(60 * 2 ** min(stk.queries, 6), 1800)
            fields["next_query_at"] = now + timedelta(seconds=wait)
    elif result.result_code == "0":
        fields.update(
            state=StkRequest.State.PAID,
            result_code="0",
            result_desc=result.result_desc or "Paid (confirmed by query)",
            finished_at=now,
        )
    else:
        fields.update(
            state=StkRequest.State.FAILED,
            result_code=result.result_code,
            result_desc=result.result_desc[:255],
            finished_at=now,
        )
    StkRequest.objects.filter(pk=stk.pk, state=StkRequest.State.PENDING).update(**fields)
    stk.refresh_from_db()
    return stk


@dataclass
class PayStatus:
    state: str  # waiting, paid, online, failed
    message: str


def pay_status(stk: StkRequest) -> PayStatus:
    """What the pay page tells the payer, in plain words."""
    from network.models import RouterJob

    if stk.state == StkRequest.State.PENDING:
        return PayStatus("waiting", "Check your phone and enter your M-Pesa PIN.")
    if stk.state in (StkRequest.State.FAILED, StkRequest.State.ERROR):
        return PayStatus("failed", stk.failure_reason)
    payment = stk.payments.first()
    if payment is None or payment.state != Payment.State.CREDITED:
        return PayStatus("paid", "Payment received. We are updating your account...")
    if stk.customer_id is None:  # for a purpose: its own pages say what came of it
        return PayStatus("online", "Payment received. Thank you!")
    accounts = stk.customer.service_accounts.exclude(status="terminated")
    if accounts.filter(status="suspended").exists():
        return PayStatus(
            "paid",
            "Payment received, but your account still has an amount due. "
            "Pay the rest to reconnect.",
        )
    waiting = RouterJob.objects.filter(
        service_account__in=accounts, state__in=["pending", "running", "retry"]
    ).exists()
    if waiting:
        return PayStatus("paid", "Payment received. Reconnecting you now...")
    return PayStatus("online", "Paid. You are back online.")


# --- the sweep -----------------------------------------------------------------------------


def sweep(now=None) -> dict:
    """Finish what was left: callbacks stored but not parsed (the process died), payments
    stored but not credited (Redis was down), STK pushes with no callback."""
    now = now or timezone.now()
    done = {"callbacks": 0, "payments": 0, "stk": 0}
    for callback in Callback.objects.filter(
        state=Callback.State.RECEIVED, received_at__lt=now - STALE_CALLBACK
    )[:500]:
        retake(callback)
        done["callbacks"] += 1
    for pk in Payment.objects.filter(
        state=Payment.State.RECEIVED, received_at__lt=now - STALE_PAYMENT
    ).values_list("pk", flat=True)[:2000]:
        try:
            if credit_payment(pk) == "credited":
                done["payments"] += 1
        except Exception as exc:  # one bad payment must not stop the sweep
            log.exception("payment %s could not be credited", pk)
            Payment.objects.filter(pk=pk).update(
                attempts=F("attempts") + 1, last_error=str(exc)[:2000]
            )
    for stk in StkRequest.objects.filter(
        state=StkRequest.State.PENDING,
        checkout_request_id__isnull=False,
        next_query_at__lte=now,
    )[:200]:
        query_stk(stk)
        done["stk"] += 1
    return done


def retake(callback: Callback) -> Outcome:
    """Take a stored callback again (the sweep, after the process died or a bug was
    fixed); its state and payment are updated to what came of it this time."""
    try:
        data = parse_json(callback.body.encode())
        with transaction.atomic():
            outcome = take(callback.kind, data)
            Callback.objects.filter(pk=callback.pk).update(
                state=outcome.state, error=outcome.error, payment_id=outcome.payment_id
            )
        return outcome
    except BadCallback as exc:
        outcome = Outcome(Callback.State.FAILED, str(exc))
    except Exception as exc:  # one bad callback must not stop the sweep
        log.exception("callback %s could not be taken", callback.pk)
        outcome = Outcome(Callback.State.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
    Callback.objects.filter(pk=callback.pk).update(state=outcome.state, error=outcome.error)
    return outcome
