"""Selling time for a device without a browser (a TV, a CCTV camera): the offers sold
at a router, staff letting one through (cash, free or an offer's price), a phone on the
captive page buying one by STK push (the "bypass" payment purpose, registered in
hotspot.apps) and where such a purchase stands for its waiting page.

The binding itself is hotspot.entitlements' (add_bypass / end_bypass) and the router's
(hotspot.router); what is here is the money. Each sale is one BypassSale row: cash is
recorded there at the counter (a hotspot cash sale has no customer, so no ledger), an
M-Pesa sale by its payment, a gift at nothing. A sale grants once: a staff form posted
twice finds its sale by the form's token, a duplicate callback never reaches the
purpose again (payments.purposes) and the sale is locked and checked besides.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from hotspot import entitlements
from hotspot.captive import CaptiveError, Device
from hotspot.captive_purchase import (
    check_prompt_limits,
    new_reference,
    prompt_on_phone,
    send_push,
)
from hotspot.models import Bypass, BypassOffer, BypassSale
from ispops import audit
from payments.models import Payment
from portal import pay
from portal.services import held

PURPOSE = "bypass"  # the payment purpose a paid push is handed to (apps.py)


class SaleError(Exception):
    """A sale refused, in words for the person at the form."""


def new_token() -> str:
    """The staff form's one-time token (a double post records one sale)."""
    return "ST" + secrets.token_urlsafe(18)


# --- what is sold where -----------------------------------------------------------------


def offers_for(router) -> list[BypassOffer]:
    """Offers on sale at `router`: those ticked for it and those ticked for none."""
    return list(
        BypassOffer.objects.filter(is_active=True)
        .filter(Q(routers=router) | Q(routers__isnull=True))
        .distinct()
        .order_by("price", "name")
    )


def offer_for(router, pk) -> BypassOffer | None:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return next((offer for offer in offers_for(router) if offer.pk == pk), None)


def length_text(minutes: int | None) -> str:
    """60 -> "1 hour", 2880 -> "2 days", None -> "no end"."""
    if not minutes:
        return "no end"
    for size, word in ((24 * 60, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            n = minutes // size
            return f"{n} {word}{'' if n == 1 else 's'}"
    return f"{minutes} minutes"


# --- staff ------------------------------------------------------------------------------


def sell(
    *,
    router,
    mac: str,
    offer: BypassOffer | None,
    minutes: int | None,
    method: str,
    amount: Decimal | None,
    note: str,
    token: str,
    actor,
    now,
) -> BypassSale:
    """Staff let a device through: for an offer's time (its price unless another amount
    is given) or for `minutes` (None: until ended), paid in cash or free. The sale and
    the bypass are one transaction; the same `token` twice returns the first sale."""
    try:
        mac = entitlements.normalise_mac(mac)
    except entitlements.Refused as exc:
        raise SaleError(str(exc)) from None
    if method not in (BypassSale.Method.CASH, BypassSale.Method.FREE):
        raise SaleError("staff record cash or a free pass; M-Pesa is paid on the phone")
    if offer is not None:
        minutes = offer.minutes
        if amount is None and method == BypassSale.Method.CASH:
            amount = offer.price
    if method == BypassSale.Method.FREE:
        amount = Decimal("0.00")
    if amount is None or amount < 0:
        raise SaleError("give the amount taken in cash")
    if not token:
        raise SaleError("the form is stale: open it again")
    try:
        return _sell(router, mac, offer, minutes, method, amount, note, token, actor, now)
    except IntegrityError:
        # The same form posted twice at once: the second's sale (and the time it added)
        # is rolled back whole by the reference's constraint; the first one stands.
        done = BypassSale.objects.filter(reference=token).first()
        if done is None:
            raise
        return done


def _sell(router, mac, offer, minutes, method, amount, note, token, actor, now) -> BypassSale:
    with transaction.atomic():
        done = BypassSale.objects.filter(reference=token).first()
        if done is not None:
            return done
        bypass = entitlements.add_bypass(
            router=router, mac=mac, minutes=minutes, note=note, actor=actor, now=now
        )
        sale = BypassSale.objects.create(
            reference=token,
            router=router,
            mac=mac,
            offer=offer,
            minutes=minutes,
            amount=Decimal(amount).quantize(Decimal("0.01")),
            method=method,
            bypass=bypass,
            note=note,
            sold_by=audit.describe_actor(actor)[1],
            created_at=now,
            granted_at=now,
        )
        audit.record(
            sale,
            "create",
            {"method": [None, method], "amount": [None, str(sale.amount)], "mac": [None, mac]},
            actor=actor,
        )
    return sale


def bypasses(routers):
    """Active bypasses, then ended ones, on `routers` (a queryset the viewer may see),
    with their sales for the "paid by" column."""
    return (
        Bypass.objects.filter(router__in=routers)
        .select_related("router")
        .prefetch_related("sales")
        .order_by("state", "-created_at", "-id")
    )


# --- the captive page -------------------------------------------------------------------


def start_purchase(device: Device, offer: BypassOffer, mac: str, phone: str, *, now, actor):
    """Write the sale, then send the STK push for the offer's price to `phone` (the
    phone on the hotspot pays for another device's `mac`). One prompt per phone at a
    time, a few per phone and per address per half hour; called outside a transaction
    (the push's row must be visible to a callback the moment it exists)."""
    try:
        mac = entitlements.normalise_mac(mac)
    except entitlements.Refused:
        raise CaptiveError(
            "That is not a MAC address: 12 letters and digits, e.g. A4:5E:60:12:34:56."
        ) from None
    if offer.price < 1:
        raise CaptiveError("This offer cannot be paid by M-Pesa.")
    with held(f"bypass-stk:{phone}"):
        mpesa = BypassSale.objects.filter(method=BypassSale.Method.MPESA)
        pending = prompt_on_phone(BypassSale.objects.all(), phone, now)
        if pending is not None:
            return pending
        check_prompt_limits(mpesa, phone, device.ip, now)
        sale = BypassSale.objects.create(
            reference=new_reference("BP"),
            router_id=device.router_id,
            mac=mac,
            offer=offer,
            minutes=offer.minutes,
            amount=offer.price,
            method=BypassSale.Method.MPESA,
            phone=phone,
            ip=device.ip,
            note=f"bought from {device.mac}",
            sold_by=actor,
            created_at=now,
        )
        stk = send_push(
            phone=phone, amount=offer.price, purpose=PURPOSE, reference=sale.reference, actor=actor
        )
        BypassSale.objects.filter(pk=sale.pk).update(stk=stk)
        sale.stk = stk
    return sale


def sale_paid(payment: Payment) -> None:
    """The "bypass" payment purpose: a paid push lets its device through (inside the
    crediting transaction, the payment locked; payments runs this once per payment, and
    add_bypass is idempotent on the payment besides). Money short of the price grants
    nothing and is left for staff on the payment."""
    stk = payment.stk_request
    sale = (
        BypassSale.objects.select_for_update(of=("self",))
        .select_related("router")
        .filter(Q(stk=stk) | Q(reference=stk.account_reference))
        .first()
    )
    if sale is None:
        raise LookupError(f"no bypass sale for push {stk.pk}")
    if sale.granted_at is not None:
        return
    if payment.amount < sale.amount:
        Payment.objects.filter(pk=payment.pk).update(
            note=f"bypass: KES {payment.amount} is short of KES {sale.amount} for "
            f"{sale.mac}; nothing granted"
        )
        return
    now = timezone.now()
    sale.bypass = entitlements.add_bypass(
        router=sale.router,
        mac=sale.mac,
        minutes=sale.minutes,
        note=f"bought by 0{sale.phone[3:]}",
        payment=payment,
        actor="M-Pesa",
        now=now,
    )
    sale.payment = payment
    sale.amount = payment.amount  # what was taken is what the sales page counts
    sale.granted_at = now
    sale.save(update_fields=["bypass", "payment", "amount", "granted_at"])


@dataclass(frozen=True)
class SaleProgress:
    state: str  # waiting, late, failed, paid (being set up), ready (let through)
    message: str
    seconds_left: int = 0

    @property
    def final(self) -> bool:
        return self.state in ("failed", "ready")


def sale_progress(sale: BypassSale, now) -> SaleProgress:
    """Where the purchase is: the prompt's countdown (portal.pay's, shared), then the
    bypass once the payment granted it."""
    prompt = pay.prompt_progress(sale.stk, now)
    if prompt is not None:
        return SaleProgress(prompt.state, prompt.message, prompt.seconds_left)
    sale.refresh_from_db(fields=["bypass", "granted_at"])
    if sale.bypass_id is None:
        return SaleProgress("paid", "Payment received. Letting the device through...")
    bypass = Bypass.objects.get(pk=sale.bypass_id)
    if bypass.router_pending:
        return SaleProgress("paid", "Payment received. Telling the router...")
    until = ""
    if bypass.ends_at:
        until = " until " + timezone.localtime(bypass.ends_at).strftime("%a %-d %b, %H:%M")
    return SaleProgress(
        "ready",
        f"Done: {sale.mac} is let through{until}. "
        "Turn the device's Wi-Fi off and on if it does not connect.",
    )
