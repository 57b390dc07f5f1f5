"""Payment operations: taking in Safaricom's callbacks (stored raw first), turning them
into one payment per receipt, matching payments to customers, crediting them through the
billing ledger (which restores a settled subscriber in the same transaction), STK push
requests, manual payments, reversals and the sweep that finishes whatever was left.

The web request only stores: the raw callback, then the payment row (unique on the
receipt). Crediting runs in a worker; if Redis is down when the payment is stored, the
sweep credits it when Redis is back. Every step is safe to run twice.
"""

import ipaddress
import json
import logging
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
from payments.daraja import Daraja, DarajaError
from payments.models import Callback, MpesaSettings, Payment, StkRequest

log = logging.getLogger(__name__)
security_log = logging.getLogger("ispops.security")

NAIROBI = ZoneInfo("Africa/Nairobi")
MAX_BODY = 16 * 1024  # a real callback is under 2 KB
CENT = Decimal("0.01")
STALE_PAYMENT = timedelta(seconds=30)
STALE_CALLBACK = timedelta(minutes=1)
STK_FIRST_QUERY = timedelta(minutes=2)
STK_GIVE_UP = timedelta(hours=2)
MAX_STK_AMOUNT = 250_000

audit.register(
    MpesaSettings, secret=["consumer_key", "consumer_secret", "passkey", "callback_token"]
)
audit.register(Payment, exclude=["attempts", "last_error"])


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


def source_allowed(cfg: MpesaSettings, ip: str | None) -> bool:
    """The optional allowlist: empty allows all; otherwise addresses or networks."""
    entries = [line.strip() for line in cfg.allowed_ips.splitlines() if line.strip()]
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


def store_callback(kind: str, body: bytes, headers: dict, source_ip: str | None) -> Callback:
    """Save the request as it came, committed on its own, before anything can fail."""
    return Callback.objects.create(
        kind=kind,
        body=body.decode("utf-8", errors="replace"),
        headers=headers,
        source_ip=source_ip,
    )


def parse_json(body: bytes) -> dict:
    if len(body) > MAX_BODY:
        raise BadCallback(f"body over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadCallback("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadCallback("body is not a JSON object")
    return data


def _fail(callback: Callback, reason: str) -> None:
    Callback.objects.filter(pk=callback.pk).update(state=Callback.State.FAILED, error=reason)


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


def validate_c2b(callback: Callback, data: dict) -> dict:
    """Accept or refuse a paybill payment before it happens, by its account number."""
    cfg = MpesaSettings.load()
    amount = _amount(data.get("TransAmount"))
    if amount is None:
        reply = {"ResultCode": "C2B00013", "ResultDesc": "Rejected"}
    elif cfg.reject_unknown_accounts and find_customer(data.get("BillRefNumber")) is None:
        reply = {"ResultCode": "C2B00012", "ResultDesc": "Rejected"}
    else:
        reply = {"ResultCode": "0", "ResultDesc": "Accepted"}
    state = Callback.State.PROCESSED if reply["ResultCode"] == "0" else Callback.State.REJECTED
    Callback.objects.filter(pk=callback.pk).update(state=state, error=reply["ResultCode"])
    return reply


def take_confirmation(callback: Callback, data: dict) -> Payment:
    """A C2B confirmation: the payment row, once per TransID; credited by a worker."""
    receipt = str(data.get("TransID") or "").strip().upper()
    amount = _amount(data.get("TransAmount"))
    if not re.fullmatch(r"[A-Z0-9]{6,20}", receipt):
        _fail(callback, "no usable TransID")
        raise BadCallback("TransID missing or malformed")
    if amount is None:
        _fail(callback, "no usable TransAmount")
        raise BadCallback("TransAmount missing or not a positive amount")
    names = (data.get(k) or "" for k in ("FirstName", "MiddleName", "LastName"))
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
    payment, created = _store_payment(fields, callback)
    if not created:
        Payment.objects.filter(pk=payment.pk, via_c2b=False).update(via_c2b=True)
    return payment


def take_stk_callback(callback: Callback, data: dict) -> StkRequest:
    """The end of an STK push: failure recorded on the request, success stored as the
    payment of its receipt (once, even if the C2B confirmation reported it already)."""
    try:
        body = data["Body"]["stkCallback"]
        checkout = str(body["CheckoutRequestID"])
        code = str(body["ResultCode"])
    except (KeyError, TypeError):
        _fail(callback, "not an STK callback")
        raise BadCallback(
            "Body.stkCallback with CheckoutRequestID and ResultCode expected"
        ) from None
    stk = StkRequest.objects.filter(checkout_request_id=checkout).first()
    if stk is None:
        _fail(callback, f"unknown CheckoutRequestID {checkout}")
        security_log.warning("STK callback for unknown CheckoutRequestID %s", checkout)
        return None
    desc = str(body.get("ResultDesc") or "")[:255]
    if code != "0":
        with transaction.atomic():
            StkRequest.objects.filter(pk=stk.pk, state=StkRequest.State.PENDING).update(
                state=StkRequest.State.FAILED,
                result_code=code,
                result_desc=desc,
                finished_at=timezone.now(),
            )
            Callback.objects.filter(pk=callback.pk).update(state=Callback.State.PROCESSED)
        return stk
    items = _items(body.get("CallbackMetadata"))
    receipt = str(items.get("MpesaReceiptNumber") or "").strip().upper()
    amount = _amount(items.get("Amount"))
    if not receipt or amount is None:
        _fail(callback, "success without receipt or amount")
        raise BadCallback("CallbackMetadata lacks MpesaReceiptNumber or Amount")
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
    with transaction.atomic():
        payment, created = _store_payment(fields, callback)
        if not created:
            Payment.objects.filter(pk=payment.pk).update(via_stk=True, stk_request=stk)
            # The C2B confirmation came first and matched nobody (a till has no account
            # number): the STK request says whose it is.
            unmatched = Payment.objects.filter(pk=payment.pk, state=Payment.State.UNMATCHED)
            if unmatched.update(
                state=Payment.State.RECEIVED, customer_id=stk.customer_id, matched_by="stk"
            ):
                transaction.on_commit(lambda: credit_soon(payment.pk))
        StkRequest.objects.filter(pk=stk.pk).exclude(state=StkRequest.State.PAID).update(
            state=StkRequest.State.PAID,
            result_code=code,
            result_desc=desc,
            receipt=receipt,
            finished_at=timezone.now(),
        )
    return stk


def _store_payment(fields: dict, callback: Callback) -> tuple[Payment, bool]:
    """Insert the payment unless its receipt is known; link the callback; have a worker
    credit it after commit."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                payment = Payment.objects.create(**fields)
            created = True
        except IntegrityError:
            payment = Payment.objects.get(
                method=Payment.Method.MPESA, reference=fields["reference"]
            )
            created = False
        Callback.objects.filter(pk=callback.pk).update(
            state=Callback.State.PROCESSED, payment=payment
        )
        if created:
            transaction.on_commit(lambda: credit_soon(payment.pk))
    return payment, created


def credit_soon(payment_id: int) -> None:
    """Hand the payment to a worker. If Redis is down it stays stored, and the sweep
    credits it when Redis is back."""
    from payments.tasks import credit_payment_task

    try:
        credit_payment_task.delay(payment_id)
    except Exception as exc:  # any broker failure
        log.warning("payment %s not sent to a worker (%s); the sweep will", payment_id, exc)


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
        payment = (
            Payment.objects.select_for_update(skip_locked=True)
            .filter(pk=payment_id, state=Payment.State.RECEIVED)
            .first()
        )
        if payment is None:
            return "nothing to do"
        customer, how = _match(payment)
        if customer is None:
            Payment.objects.filter(pk=payment.pk).update(
                state=Payment.State.UNMATCHED, attempts=F("attempts") + 1
            )
            log.info("payment %s (%s) is unmatched", payment.reference, payment.account_reference)
            return "unmatched"
        _credit(payment, customer, how=how, actor=actor)
    return "credited"


def _match(payment: Payment):
    if payment.customer_id:
        return payment.customer, payment.matched_by or "stk"
    customer = find_customer(payment.account_reference)
    if customer is not None:
        return customer, "account"
    customer = customer_by_phone(payment.msisdn)
    if customer is not None:
        return customer, "phone"
    return None, ""


def _credit(payment: Payment, customer, *, how: str, actor) -> None:
    """Inside the caller's transaction: ledger, allocation, restoration, receipt SMS."""
    from ispops.messaging import services as messaging

    entry = billing.record_payment(
        customer,
        payment.amount,
        actor=actor,
        reference=payment.reference,
        description=f"{payment.get_method_display()} payment {payment.reference}",
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
            "receipt": payment.reference,
            "balance": f"KES {balance:,.2f}",
        },
        related=f"payment:{payment.pk}",
    )


def assign_payment(payment: Payment, customer, *, actor) -> Payment:
    """Finance puts an unmatched payment on a customer: credited at once."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.state != Payment.State.UNMATCHED:
            state = locked.get_state_display().lower()
            raise PaymentError(f"payment {locked.reference} is {state}, not unmatched")
        with audit.acting_as(actor):
            _credit(locked, customer, how="staff", actor=actor)
    return locked


def record_manual_payment(customer, *, method: str, amount, reference: str, actor, note=""):
    """Cash, bank transfer, cheque (or an M-Pesa receipt typed in by hand): stored and
    credited at once. A reference is taken once per customer (once at all for M-Pesa)."""
    reference = reference.strip().upper() if method == Payment.Method.MPESA else reference.strip()
    if not reference:
        raise PaymentError("a reference (slip, cheque or receipt number) is required")
    amount = _amount(amount)
    if amount is None:
        raise PaymentError("the amount must be above zero")
    _, label = audit.describe_actor(actor)
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                method=method,
                reference=reference,
                amount=amount,
                customer=customer,
                matched_by="staff",
                recorded_by=label,
                note=note[:255],
            )
            with audit.acting_as(actor):
                _credit(payment, customer, how="staff", actor=actor)
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
        with audit.acting_as(actor):
            locked.save(update_fields=["state", "reversed_at", "reversed_by", "reversal_reason"])
    return locked


# --- STK push ------------------------------------------------------------------------------


def stk_amount(amount) -> int:
    """Daraja takes whole shillings: cents are rounded up so the bill is covered."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise PaymentError("the amount must be a number") from None
    whole = int(value.to_integral_value(rounding=ROUND_CEILING))
    if not 1 <= whole <= MAX_STK_AMOUNT:
        raise PaymentError(f"the amount must be between KES 1 and KES {MAX_STK_AMOUNT:,}")
    return whole


def start_stk_push(customer, *, phone: str, amount, actor, source=StkRequest.Source.STAFF):
    """Send a payment prompt to `phone` for `customer`'s account; the request is tracked
    until its callback (or the query that replaces a lost one)."""
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
        account_reference=customer.account[:12],
        source=source,
        started_by=label,
        next_query_at=timezone.now() + STK_FIRST_QUERY,
    )
    try:
        reply = Daraja(cfg).stk_push(
            phone=phone,
            amount=whole,
            account_reference=customer.account,
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


def retake(callback: Callback) -> None:
    """Parse a stored callback again (the sweep, or staff after a fix)."""
    try:
        data = parse_json(callback.body.encode())
        if callback.kind == Callback.Kind.CONFIRMATION:
            take_confirmation(callback, data)
        elif callback.kind == Callback.Kind.STK:
            take_stk_callback(callback, data)
        else:
            validate_c2b(callback, data)
    except BadCallback as exc:
        _fail(callback, str(exc))


def find_by_receipt(text: str):
    return Payment.objects.filter(reference__iexact=text.strip()).select_related("customer")
