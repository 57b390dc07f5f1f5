"""Data top-ups of a PPPoE account with a data cap (issue 14): the plan's pack
(Plan.top_up_gb for Plan.top_up_price) given free by staff (goodwill, audited with who
and why), charged to the account like any bill, or bought with a payment (the
portal's M-Pesa purchase, portal.data_top_up).

The data is network.fup.top_up's (full speed comes back once the transaction commits,
or at the next minute's evaluation); the money is billing.sales' (an invoice of one
line, VAT as the ISP's settings say). Both happen in one transaction: the pack is
added and sold together, or neither.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import sales
from billing.ledger import BillingError
from billing.models import LedgerEntry
from ispops import audit
from network import fup
from network.models import DataTopUp
from subscribers.models import AccountStatus, ServiceType


class TopUpError(ValueError):
    """A top-up that cannot be made; str() says why, in words for staff and subscribers."""


@dataclass(frozen=True)
class Pack:
    gigabytes: int
    price: Decimal  # before VAT where the ISP prices exclusive of it
    total: Decimal  # what the customer pays

    def __str__(self) -> str:
        return f"{self.gigabytes} GB data top-up"


def pack_of(account) -> Pack:
    """The pack the account's plan sells, or TopUpError saying why there is none."""
    plan = account.plan
    if account.service != ServiceType.PPPOE or plan.data_cap_gb is None:
        raise TopUpError("top-ups are for PPPoE accounts on a plan with a data cap")
    if account.status == AccountStatus.TERMINATED:
        raise TopUpError("the account is terminated")
    if plan.top_up_gb is None or plan.top_up_price is None:
        raise TopUpError(f"the plan {plan.name} sells no top-up pack")
    return Pack(plan.top_up_gb, plan.top_up_price, sales.total(plan.top_up_price))


def give(
    account, *, actor, charge: bool, reason: str = "", now: datetime | None = None
) -> DataTopUp:
    """Staff add the plan's pack: charged to the account (an invoice due as bills are)
    or free, which needs a reason and is audited with it."""
    pack = pack_of(account)
    reason = (reason or "").strip()
    if not charge and not reason:
        raise TopUpError("say why the data is given free")
    now = now or timezone.now()
    with transaction.atomic():
        row = _add(account, pack, actor=actor, now=now)
        if charge:
            _sell(account, pack, actor=actor, now=now)
        else:
            audit.record(
                account,
                "update",
                {"data_top_up_free": [None, f"{pack.gigabytes} GB: {reason}"[:200]]},
                actor=actor,
            )
    return row


def buy(
    account, *, amount: Decimal, reference: str, actor, now: datetime | None = None
) -> tuple[DataTopUp, LedgerEntry]:
    """The pack bought with a payment of `amount` (receipt `reference`): the payment is
    recorded and pays the pack's invoice. TopUpError, with nothing recorded, when the
    pack cannot be had for that money (the plan changed while the prompt was on the
    phone); the caller then keeps the money as the customer's credit. Returns the
    top-up and the payment's ledger entry."""
    pack = pack_of(account)
    if amount < pack.total:
        raise TopUpError(f"KES {amount} does not pay for the pack (KES {pack.total})")
    now = now or timezone.now()
    paid = sales.Paid(amount, reference, f"M-Pesa payment {reference} for a data top-up")
    with transaction.atomic():
        row = _add(account, pack, actor=actor, now=now)
        sale = _sell(account, pack, actor=actor, now=now, paid=paid)
    return row, sale.payment


def _add(account, pack: Pack, *, actor, now) -> DataTopUp:
    try:
        return fup.top_up(account, pack.gigabytes, actor=actor, now=now)
    except fup.TopUpError as exc:
        raise TopUpError(str(exc)) from None


def _sell(account, pack: Pack, *, actor, now, paid: sales.Paid | None = None) -> sales.Sale:
    text = f"{pack} for {account.username or account.customer.account}"
    try:
        return sales.sell(account, pack.price, actor=actor, reason=text, paid=paid, at=now)
    except BillingError as exc:
        raise TopUpError(str(exc)) from None
