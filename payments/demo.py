"""Demo payments (seed_demo): the demo ISP's M-Pesa settings pointing at the Daraja
simulator that `make run` starts, M-Pesa payments for most invoices and for prepaid
accounts (credited through the ledger as the callbacks would be), a few in the
unmatched queue, and a cash payment. Deterministic; run once."""

import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from billing.models import Invoice
from billing.services import day_start
from payments import services
from payments.models import MpesaSettings, Payment
from payments.simulator.server import SANDBOX_PASSKEY
from subscribers.models import ServiceAccount

SIMULATOR_URL = "http://127.0.0.1:18080"
SHORTCODE = "174379"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def seed(out=None) -> None:
    say = out or (lambda text: None)
    cfg = MpesaSettings.load()
    if not cfg.configured:
        port = settings.PUBLIC_PORT or "8000"
        services.configure(
            actor="seed_demo",
            base_url=SIMULATOR_URL,
            shortcode=SHORTCODE,
            kind="paybill",
            consumer_key="ck",
            consumer_secret="cs",
            passkey=SANDBOX_PASSKEY,
            public_url=f"http://demo.localhost:{port}",
        )
    if Payment.objects.exists():
        return
    rng = random.Random(2028)
    today = timezone.localdate()
    paid = 0
    for invoice in Invoice.objects.filter(status="open").select_related("customer"):
        # Most pay; recent invoices are less often paid yet.
        if invoice.issued_on < today - timedelta(days=20) or rng.random() < 0.5:
            _mpesa(rng, invoice.customer.account, invoice.total, invoice.issued_on)
            paid += 1
    prepaid = 0
    for account in ServiceAccount.objects.filter(
        plan__billing="prepaid", status="active", expires_at__isnull=False
    ).select_related("plan", "customer")[:120]:
        _mpesa(rng, account.customer.account, account.plan.price, today - timedelta(days=1))
        prepaid += 1
    for typed in ("DF 0OO12", "account", "JAN RENT"):  # what payers get wrong
        _mpesa(rng, typed, rng.choice((500, 1500, 2500)), today)
    say(f"  {paid} invoice payments, {prepaid} prepaid payments, 3 unmatched")


def _mpesa(rng, account_reference: str, amount, day) -> None:
    receipt = "U" + "".join(rng.choice(LETTERS) for _ in range(9))
    when = day_start(day) + timedelta(hours=rng.randint(7, 21), minutes=rng.randint(0, 59))
    payment = Payment.objects.create(
        method=Payment.Method.MPESA,
        reference=receipt,
        amount=amount,
        account_reference=account_reference,
        msisdn="2547 ***** " + f"{rng.randint(0, 999):03d}",
        payer_name=rng.choice(("JOHN", "MARY", "PETER", "GRACE", "JAMES", "FAITH")),
        paid_at=when,
        received_at=when,
        via_c2b=True,
    )
    services.credit_payment(payment.pk, actor="seed_demo")
