"""Buying a package on the captive page by M-Pesa: the purchase and its STK push, what a
paid push grants (the "hotspot" payment purpose, registered in hotspot.apps), and where
a purchase stands for the waiting page. The device and the buyer's login are
hotspot.captive's; the prompt's countdown is portal.pay's, shared with the pay page.

A purchase's login is the buyer's phone in its local form (hotspot.captive's module
docstring says why); its AccountReference is HS and random characters, never a
customer's account, and a payment for the purpose is never matched by it anyway.
"""

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hotspot import entitlements
from hotspot.captive import CaptiveError, Device
from hotspot.models import Entitlement, Package, Purchase
from payments import services as payments
from payments.models import Payment, StkRequest
from portal import pay
from portal.services import held

PURPOSE = "hotspot"  # the payment purpose a paid purchase is handed to (apps.py)
PROMPT_WINDOW = timedelta(minutes=30)
PROMPTS_PER_WINDOW = 5
PROMPTS_PER_ADDRESS = 10
ONE_PROMPT = timedelta(minutes=2)


def new_reference(prefix: str = "HS") -> str:
    """A push's AccountReference: a 2-letter prefix (HS a package, BP a device let
    through) and 10 base32 characters (12, Daraja's limit), unique by its table's
    constraint, never a customer's account number or username (a payment for a
    purpose is never matched by its reference anyway)."""
    return prefix + base64.b32encode(secrets.token_bytes(7)).decode()[:10]


def prompt_on_phone(sales, phone: str, now):
    """The sale in `sales` (one product's, with phone, stk and created_at) whose prompt
    is still on `phone`: a second tap gets it back instead of a second prompt."""
    return (
        sales.filter(
            phone=phone, stk__state=StkRequest.State.PENDING, created_at__gte=now - ONE_PROMPT
        )
        .select_related("stk")
        .first()
    )


def check_prompt_limits(sales, phone: str, ip, now) -> None:
    """CaptiveError when `sales` (one product's sales by M-Pesa, with phone and ip)
    already hold the prompts one phone or one address may send in PROMPT_WINDOW:
    prompts are pushed to phones that did not ask for them, so one connection may not
    send many, to one number or to many."""
    recent = sales.filter(created_at__gte=now - PROMPT_WINDOW)
    if (
        recent.filter(phone=phone).count() >= PROMPTS_PER_WINDOW
        or recent.filter(ip=ip).count() >= PROMPTS_PER_ADDRESS
    ):
        raise CaptiveError("Too many payment requests. Wait a few minutes and try again.")


def send_push(*, phone: str, amount, purpose: str, reference: str, actor) -> StkRequest:
    """The STK push for a hotspot purpose (nobody's account); CaptiveError in words."""
    try:
        return payments.start_stk_push(
            None,
            phone=phone,
            amount=amount,
            actor=actor,
            source=StkRequest.Source.HOTSPOT,
            purpose=purpose,
            account_reference=reference,
        )
    except payments.PaymentError as exc:
        raise CaptiveError(f"M-Pesa could not send the request: {exc}") from None


def start_purchase(device: Device, package: Package, phone: str, *, login: str, now, actor):
    """Write the purchase, then send the STK push for the package's price to `phone`.
    One prompt per phone at a time (a second tap returns the first); a few per phone
    per half hour. Serialised per phone; called outside a transaction (the push's row
    must be visible to a callback the moment it exists)."""

    if package.price < 1:
        raise CaptiveError("This package is free: ask for the free trial instead.")
    with held(f"hotspot-stk:{phone}"):
        pending = prompt_on_phone(Purchase.objects.all(), phone, now)
        if pending is not None:
            return pending
        check_prompt_limits(Purchase.objects.all(), phone, device.ip, now)
        purchase = Purchase.objects.create(
            reference=new_reference(),
            package=package,
            router_id=device.router_id,
            phone=phone,
            mac=device.mac,
            ip=device.ip,
            login=login,
            created_at=now,
        )
        stk = send_push(
            phone=phone,
            amount=package.price,
            purpose=PURPOSE,
            reference=purchase.reference,
            actor=actor,
        )
        Purchase.objects.filter(pk=purchase.pk).update(stk=stk)
        purchase.stk = stk
    return purchase


def purchase_paid(payment: Payment) -> None:
    """The "hotspot" payment purpose: a paid push grants its purchase's package (in the
    crediting transaction, the payment locked; payments runs this once per payment).
    Money short of the price grants nothing and is left for staff on the payment."""

    stk = payment.stk_request
    purchase = (
        Purchase.objects.select_for_update(of=("self",))
        .select_related("package", "router")
        .filter(Q(stk=stk) | Q(reference=stk.account_reference))
        .first()
    )
    if purchase is None:
        raise LookupError(f"no hotspot purchase for push {stk.pk}")
    if purchase.entitlement_id is not None:
        return
    if payment.amount < Decimal(purchase.package.price):
        Payment.objects.filter(pk=payment.pk).update(
            note=f"hotspot: KES {payment.amount} is short of {purchase.package} "
            f"(KES {purchase.package.price}); nothing granted"
        )
        return
    grant = {
        "router": purchase.router,
        "package": purchase.package,
        "source": Entitlement.Source.PURCHASE,
        "payment": payment,
        "phone": purchase.phone,
        "mac": purchase.mac,
        "actor": "M-Pesa",
        "now": timezone.now(),
    }
    try:
        with transaction.atomic():
            entitlement = entitlements.grant(login=purchase.login, **grant)
    except entitlements.Refused:
        # The rule refuses while one is live, and one went live after the buyer
        # confirmed: the money is in, so the package goes to a login of its own.
        entitlement = entitlements.grant(**grant)
    purchase.entitlement = entitlement
    purchase.save(update_fields=["entitlement"])


@dataclass(frozen=True)
class PurchaseProgress:
    state: str  # waiting, late, failed, paid (being set up), ready (log in now)
    message: str
    seconds_left: int = 0
    entitlement: Entitlement | None = None

    @property
    def final(self) -> bool:
        return self.state in ("failed", "ready")


def purchase_progress(purchase: Purchase, now) -> PurchaseProgress:
    """Where the purchase is: the prompt's countdown (portal.pay's, shared), then the
    entitlement once the payment granted it."""

    prompt = pay.prompt_progress(purchase.stk, now)
    if prompt is not None:
        return PurchaseProgress(prompt.state, prompt.message, prompt.seconds_left)
    purchase.refresh_from_db(fields=["entitlement"])
    entitlement = purchase.entitlement
    if entitlement is None:
        return PurchaseProgress("paid", "Payment received. Setting up your Wi-Fi...")
    return PurchaseProgress(
        "ready", "Payment received. You are being connected.", entitlement=entitlement
    )
