""" "I already paid": a subscriber types the M-Pesa code of a payment, and we say what
became of it or make it right.

- The code is a payment already credited to this customer: say so (MATCHED).
- An unmatched payment whose phone (and amount, if typed) agree: assigned to this
  customer by the same service finance uses (payments.services.assign_payment), so it
  is credited and the account restored exactly as a staff assignment does (ASSIGNED).
- Not found, or not agreeing: a billing ticket for finance with what was typed and
  what was checked (TICKET).
- A code claimed before, or another customer's payment: refused, with words that tell
  nothing about anyone else (REFUSED).

Every attempt is a PaymentClaim row. The daily limits per account and per address
count those rows under advisory locks, and a code is claimed once (the partial unique
constraint `one_claim_per_code`): the claim row is written before any money moves, so
two claims of one code at once never assign it twice.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction

from ispops import audit
from payments import services as payments
from payments.models import Payment
from portal.models import PaymentClaim, PortalSettings
from portal.services import lock
from tickets import services as tickets
from tickets.models import Category

DAY = timedelta(hours=24)  # "per day" is a rolling 24 hours, as for sign-in
CENT = Decimal("0.01")
# An M-Pesa receipt ("transaction code"): 10 letters and digits, e.g. TAH5J2K991.
CODE_SHAPE = re.compile(r"[A-Z0-9]{10}")

Outcome = PaymentClaim.Outcome

# Why a claim was refused, as stored in its detail; the page words each for the
# subscriber. CLAIMED and OTHERS get the same words: nothing tells whether another
# account claimed the code or the money is on another account.
CLAIMED_HERE = "claimed before by this account"
CLAIMED = "claimed before by another account"
OTHERS = "the payment is another customer's"
PROCESSING = "the payment is stored but not matched yet (the worker is on it)"


class BadCode(ValueError):
    """The text is not an M-Pesa code; str() says why."""


class Limited(Exception):
    """Too many claims today from this account or this address; nothing was recorded."""


def normalise_code(raw: str) -> str:
    """'  tah5j2k991 ' -> 'TAH5J2K991' (spaces anywhere dropped, upper case), or BadCode."""
    code = "".join(str(raw or "").split()).upper()
    if not CODE_SHAPE.fullmatch(code):
        raise BadCode("An M-Pesa code is 10 letters and digits, like TAH5J2K991.")
    return code


@dataclass(frozen=True)
class Checked:
    """What comparing the claim with the stored payments decided, before anything is
    written."""

    outcome: str
    detail: str
    payment: Payment | None = None
    phone: str = ""  # when none was typed: the account's number that agreed


def claim(
    customer,
    *,
    code: str,
    amount: Decimal | None,
    phone: str,
    ip: str | None,
    now: datetime,
    actor,
) -> PaymentClaim:
    """Claim the payment of M-Pesa `code` for `customer`, paid from `phone` (2547...; ""
    when not typed: any of the account's own numbers), of `amount` if the subscriber
    typed it. Returns the claim row (its outcome, ticket
    and payment); raises BadCode for a code of the wrong shape and Limited over the
    daily limits, both having changed nothing."""
    code = normalise_code(code)
    if amount is not None:
        amount = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
    cfg = PortalSettings.load()
    with transaction.atomic():
        lock(f"claim-customer:{customer.pk}", f"claim-ip:{ip}", f"claim-code:{code}")
        if _limited(customer, ip, cfg, now):
            raise Limited
        checked = _check(customer, code, amount, phone)
        row = PaymentClaim(
            customer=customer,
            code=code,
            amount=amount,
            phone=checked.phone or phone,
            outcome=checked.outcome,
            detail=checked.detail[:255],
            payment=checked.payment,
            ip=ip,
            at=now,
        )
        try:
            with transaction.atomic():  # a savepoint: a lost race becomes a refusal
                row.save()
        except IntegrityError:
            row.pk = None
            row.outcome, row.detail, row.payment = Outcome.REFUSED, CLAIMED, None
            row.save()
        if row.outcome == Outcome.ASSIGNED:
            payments.assign_payment(checked.payment, customer, actor=actor, how="claim")
        elif row.outcome == Outcome.TICKET:
            row.ticket = _ticket_for_finance(customer, row, actor=actor)
            row.save(update_fields=["ticket"])
        audit.record(
            row,
            "create",
            {"code": code, "outcome": row.outcome, "detail": row.detail},
            actor=actor,
        )
    return row


def earlier_claim(customer, code: str) -> PaymentClaim | None:
    """This customer's own claim that took `code` (to remind them what came of it)."""
    return (
        PaymentClaim.objects.filter(customer=customer, code=code)
        .exclude(outcome=Outcome.REFUSED)
        .select_related("ticket")
        .first()
    )


def recent_claims(customer, limit: int = 10) -> list[PaymentClaim]:
    """The customer's latest claims, newest first (one query, on portal_claim_customer)."""
    return list(
        PaymentClaim.objects.filter(customer=customer)
        .select_related("ticket")
        .order_by("-at", "-id")[:limit]
    )


def _limited(customer, ip: str | None, cfg: PortalSettings, now: datetime) -> bool:
    recent = PaymentClaim.objects.filter(at__gt=now - DAY)
    if recent.filter(customer=customer).count() >= cfg.claims_per_day:
        return True
    return bool(ip) and recent.filter(ip=ip).count() >= cfg.claims_per_ip_per_day


def _check(customer, code: str, amount: Decimal | None, phone: str) -> Checked:
    """The outcome of claiming `code`, decided from the rows as they are (the code's
    lock is held, and the payment row is locked until the transaction ends)."""
    earlier = PaymentClaim.objects.filter(code=code).exclude(outcome=Outcome.REFUSED).first()
    if earlier is not None:
        return Checked(
            Outcome.REFUSED, CLAIMED_HERE if earlier.customer_id == customer.pk else CLAIMED
        )
    payment = (
        Payment.objects.select_for_update()
        .filter(method=Payment.Method.MPESA, reference=code)
        .first()
    )
    if payment is None:
        return Checked(Outcome.TICKET, "no M-Pesa payment with this code is stored")
    if payment.customer_id is not None and payment.customer_id != customer.pk:
        return Checked(Outcome.REFUSED, OTHERS)
    if payment.customer_id == customer.pk:
        if payment.state == Payment.State.REVERSED:
            return Checked(
                Outcome.TICKET, "the payment was on this account and was reversed", payment
            )
        return Checked(
            Outcome.MATCHED, f"the payment is {payment.get_state_display().lower()} here", payment
        )
    if payment.state != Payment.State.UNMATCHED:
        # Stored moments ago and not matched yet: the worker decides in seconds.
        return Checked(Outcome.REFUSED, PROCESSING)
    problems = []
    if amount is not None and amount != payment.amount:
        problems.append(f"amount typed KES {amount} differs from the payment's")
    tried = [phone] if phone else [p for p in (customer.phone, customer.alt_phone) if p]
    agreed = next((p for p in tried if payments.payer_phone_matches(payment.msisdn, p)), "")
    if not agreed:
        problems.append(f"phone {' or '.join(tried)} does not match the payer's number")
    if problems:
        return Checked(
            Outcome.TICKET, "unmatched payment found, but " + "; ".join(problems), payment
        )
    checked = "amount and phone agree" if amount is not None else "phone agrees (no amount typed)"
    return Checked(Outcome.ASSIGNED, f"unmatched payment, {checked}", payment, agreed)


def _ticket_for_finance(customer, row: PaymentClaim, *, actor):
    """A billing ticket with everything finance needs to find the money."""
    amount = f"KES {row.amount:,.2f}" if row.amount is not None else "not given"
    phone = row.phone or "not given (the account's own numbers were tried)"
    description = (
        f"The subscriber says they paid by M-Pesa and typed this in the portal's "
        f'"I already paid":\n'
        f"- M-Pesa code: {row.code}\n"
        f"- Amount: {amount}\n"
        f"- Paid from phone: {phone}\n"
        f"- Account: {customer.account}\n\n"
        f"What was checked: {row.detail}.\n"
        f"Find the payment (M-Pesa statement, unmatched payments) and assign it, or "
        f"tell the subscriber why not."
    )
    return tickets.open_ticket(
        customer=customer,
        subject=f"Payment claim: M-Pesa {row.code}",
        description=description,
        category=Category.BILLING,
        actor=actor,
    )
