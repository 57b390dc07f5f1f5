"""Paying from the portal: what to ask for, sending the M-Pesa prompt (one pending
prompt per account at a time), and what the waiting page says as the prompt runs its
course. The money itself is never touched here: the callback (or the query that
replaces a lost one) and payments.services credit it, as for every other payment.

The waiting page's promise: it waits at least PROMPT_WAIT with a countdown, asks Daraja
itself when no callback came, and never says "failed" before M-Pesa gave a final
result; after the countdown it keeps listening and says how else to pay.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing import services as billing
from billing.prepaid import top_ups
from payments import services as payments
from payments.models import MpesaSettings, StkRequest
from portal.services import held
from subscribers.models import AccountStatus, Billing, ServiceAccount, StatusChange

PROMPT_WAIT = timedelta(seconds=90)
# A prompt left on the phone for this long is over (M-Pesa times it out within about a
# minute): only then may another be sent for the same account.
ONE_PROMPT = timedelta(minutes=2)
# With no callback, ask Daraja 5 s after the push (a callback that came back before our
# own record of the push was saved is lost to us; the query finds its result), then
# every 30 s. A query on a prompt still on the phone only says "being processed".
FIRST_QUERY = 5
QUERY_EVERY = 30
PROMPTS_PER_WINDOW = 5
PROMPT_WINDOW = timedelta(minutes=30)
TERM_CHOICES = (1, 2, 3, 6, 12)


class PayError(Exception):
    """A prompt that cannot be sent, in words for the subscriber."""


@dataclass(frozen=True)
class Offer:
    """What the pay page proposes: the amount due now, and for prepaid service the
    price of 1, 2, 3, 6 or 12 more periods (open bills included, credit deducted)."""

    due: Decimal
    prepaid: bool
    terms: dict[int, Decimal]

    def amount_for(self, terms: int | None) -> Decimal:
        if self.prepaid and terms in self.terms:
            return self.terms[terms]
        return self.due


def offer(customer, at: datetime) -> Offer:
    due = billing.to_pay(customer, at)
    prepaid = ServiceAccount.objects.filter(
        customer=customer, plan__billing=Billing.PREPAID, status__in=["active", "suspended"]
    ).exists()
    terms = top_ups(customer.pk, TERM_CHOICES, at) if prepaid else {}
    return Offer(due=due, prepaid=prepaid, terms=terms)


def pending_prompt(customer, now: datetime) -> StkRequest | None:
    """The account's prompt still on a phone, if any (from the portal or the pay page)."""
    return (
        StkRequest.objects.filter(
            customer=customer,
            state=StkRequest.State.PENDING,
            created_at__gte=now - ONE_PROMPT,
        )
        .exclude(source=StkRequest.Source.STAFF)
        .order_by("-created_at")
        .first()
    )


@dataclass(frozen=True)
class Sent:
    stk: StkRequest
    already_pending: bool


def send_prompt(
    customer,
    *,
    phone: str,
    amount: Decimal,
    actor: str,
    now: datetime,
    purpose: str = "",
    account_reference: str = "",
) -> Sent:
    """Send an STK push for `customer`, unless one is still pending (that one is
    returned: never two prompts for one account). Serialised per customer, so two
    taps at once send one prompt. Called outside a transaction. `purpose` and
    `account_reference`: a push for something the customer buys (payments.purposes),
    not their account's balance (portal.data_top_up)."""
    if amount < 1:
        raise PayError("There is nothing to pay right now.")
    if not MpesaSettings.load().configured:
        raise PayError("M-Pesa payments are not available here yet.")
    # Not one transaction: the request row and its CheckoutRequestID must be committed
    # as soon as they are written, or a callback arriving at once finds nothing.
    with held(f"stk:{customer.pk}"):
        pending = pending_prompt(customer, now)
        if pending is not None:
            return Sent(pending, already_pending=True)
        recent = StkRequest.objects.filter(
            customer=customer,
            source=StkRequest.Source.PORTAL,
            created_at__gte=now - PROMPT_WINDOW,
        ).count()
        if recent >= PROMPTS_PER_WINDOW:
            raise PayError("Too many payment requests. Wait a few minutes and try again.")
        try:
            stk = payments.start_stk_push(
                customer,
                phone=phone,
                amount=amount,
                actor=actor,
                source=StkRequest.Source.PORTAL,
                purpose=purpose,
                account_reference=account_reference,
            )
        except payments.PaymentError as exc:
            # The request row (state "not sent") is kept: the limit counts it.
            raise PayError(f"M-Pesa could not send the request: {exc}") from None
    return Sent(stk, already_pending=False)


def _queries_due(elapsed: float) -> int:
    if elapsed < FIRST_QUERY:
        return 0
    return 1 + int((elapsed - FIRST_QUERY) // QUERY_EVERY)


@dataclass(frozen=True)
class Progress:
    """What the waiting page shows. state: waiting (countdown running), late (no final
    answer yet, countdown over), failed, paid (reconnecting), online."""

    state: str
    message: str
    seconds_left: int = 0

    @property
    def final(self) -> bool:
        return self.state in ("failed", "online")


def prompt_progress(stk: StkRequest, now: datetime) -> Progress | None:
    """The prompt's own course, shared by every waiting page (the portal's, the
    hotspot's): asking Daraja when the callback is late, the countdown while the PIN
    may still come, "late" after it (never "failed" before M-Pesa's final word), and
    the failure in plain words. None once the prompt was paid: what that means is the
    caller's to say."""
    elapsed = (now - stk.created_at).total_seconds()
    if (
        stk.state == StkRequest.State.PENDING
        and stk.checkout_request_id
        and stk.queries < _queries_due(elapsed)
    ):
        stk = payments.query_stk(stk)
    if stk.state == StkRequest.State.PENDING:
        left = max(0, int((PROMPT_WAIT.total_seconds() - elapsed) + 0.999))
        if left > 0:
            return Progress("waiting", "Check your phone and enter your M-Pesa PIN.", left)
        return Progress(
            "late",
            "We are still waiting for M-Pesa's answer. If you entered your PIN, the "
            "payment will show here shortly; you do not need to pay again.",
        )
    if stk.state in (StkRequest.State.FAILED, StkRequest.State.ERROR):
        return Progress("failed", stk.failure_reason)
    return None


def progress(stk: StkRequest, now: datetime) -> Progress:
    """Where the prompt is, asking Daraja when the callback is late."""
    prompt = prompt_progress(stk, now)
    if prompt is not None:
        return prompt
    status = payments.pay_status(stk)
    if status.state == "online":
        restored = StatusChange.objects.filter(
            service_account__customer_id=stk.customer_id,
            from_status=AccountStatus.SUSPENDED,
            to_status=AccountStatus.ACTIVE,
            at__gte=stk.created_at,
        ).exists()
        if restored:
            return Progress("online", "Payment received. You are back online.")
        return Progress("online", "Payment received. Thank you!")
    return Progress("paid", status.message)
