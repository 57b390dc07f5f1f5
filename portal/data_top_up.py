"""Buying a data top-up in the portal (issue 14): the M-Pesa prompt for the plan's pack
(portal.pay's flow: one prompt per account at a time, the countdown, the query that
replaces a lost callback), the payment purpose that adds the pack when M-Pesa says
it is paid, and what the waiting page says.

The push carries the customer (whose money it is) and the purpose PURPOSE with the
account reference "DATA<service account id>" (which account gets the data), so the
pack is known from the push alone; payments hands the paid push to `paid` once per
payment (payments.purposes), inside its crediting transaction: the sale is recorded
and paid by that payment and the pack added (subscribers.top_ups.buy), full speed back
once it commits. A failed or cancelled prompt never reaches `paid`: nothing changes.
Money that cannot buy the pack any more (the plan changed while the prompt was on the
phone) is credited to the customer's account as any payment is, never lost.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from billing import services as billing
from network.models import DataTopUp
from payments.models import Payment, StkRequest
from portal import pay
from subscribers import top_ups
from subscribers.models import ServiceAccount

log = logging.getLogger(__name__)

PURPOSE = "data_topup"  # registered in portal.apps
REFERENCE = "DATA{}"
_REFERENCE = re.compile(r"DATA(\d{1,8})")


def reference_for(account) -> str:
    return REFERENCE.format(account.pk)


def buy(account, *, phone: str, actor: str, now: datetime) -> pay.Sent:
    """Send the prompt for the account's pack (its price with VAT, in whole shillings
    as M-Pesa takes them). pay.PayError in words for the subscriber."""
    try:
        pack = top_ups.pack_of(account)
    except top_ups.TopUpError as exc:
        raise pay.PayError(f"No top-up can be bought for this account: {exc}.") from None
    sent = pay.send_prompt(
        account.customer,
        phone=phone,
        amount=pack.total,
        actor=actor,
        now=now,
        purpose=PURPOSE,
        account_reference=reference_for(account),
    )
    if sent.already_pending and sent.stk.purpose != PURPOSE:
        raise pay.PayError(
            "Another payment prompt is on your phone. Finish or cancel it, then try again."
        )
    return sent


def account_id(stk: StkRequest) -> int:
    """The service account a push's reference names (0: none)."""
    found = _REFERENCE.fullmatch(stk.account_reference or "")
    return int(found.group(1)) if found else 0


def paid(payment: Payment) -> None:
    """The "data_topup" payment purpose (payments.purposes): add the pack the paid push
    was for, the payment paying its sale."""
    stk = payment.stk_request
    account = (
        ServiceAccount.objects.select_related("plan", "customer")
        .filter(pk=account_id(stk), customer_id=stk.customer_id)
        .first()
    )
    payment.customer_id = stk.customer_id
    try:
        if account is None:
            raise top_ups.TopUpError(f"no account {stk.account_reference} for this customer")
        with transaction.atomic():  # a savepoint: a refusal leaves nothing of the sale
            _, entry = top_ups.buy(
                account, amount=payment.amount, reference=payment.reference, actor="M-Pesa"
            )
        note = ""
    except top_ups.TopUpError as exc:
        log.warning("data top-up for payment %s not made: %s", payment.reference, exc)
        entry = billing.record_payment(
            stk.customer,
            payment.amount,
            actor="M-Pesa",
            reference=payment.reference,
            description=f"M-Pesa payment {payment.reference} (a data top-up not made)",
        )
        note = f"data top-up not made ({exc}); credited to the account"[:255]
    payment.ledger_entry = entry
    payment.note = note
    payment.save(update_fields=["customer", "ledger_entry", "note"])


@dataclass(frozen=True)
class Progress:
    state: str  # waiting, late, failed, paid (adding the data), done
    message: str
    seconds_left: int = 0

    @property
    def final(self) -> bool:
        return self.state in ("failed", "done")


def progress(stk: StkRequest, now: datetime) -> Progress:
    """Where the purchase is: the prompt's own course (portal.pay), then the pack."""
    prompt = pay.prompt_progress(stk, now)
    if prompt is not None:
        return Progress(prompt.state, prompt.message, prompt.seconds_left)
    payment = stk.payments.first()
    if payment is None or payment.state != Payment.State.CREDITED:
        return Progress("paid", "Payment received. Adding your data...")
    added = None
    if payment.matched_by == PURPOSE and not payment.note:
        added = DataTopUp.objects.filter(
            service_account_id=account_id(stk), created_at__gte=stk.created_at
        ).first()
    if added is None:
        return Progress(
            "done",
            "Payment received, but the data could not be added: the money is on your "
            "account as credit. Call us if you need help.",
        )
    return Progress(
        "done", f"Paid. {added.gigabytes} GB added: full speed is back within a minute."
    )
