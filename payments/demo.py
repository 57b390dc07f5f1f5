"""Demo payments (seed_demo): the demo ISP's M-Pesa settings pointing at the Daraja
simulator that `make run` starts, and today's few payments in the unmatched queue.
The months of credited payments before are billing.demo's history, through
`mpesa_paid`. Deterministic; run once."""

import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from billing.services import record_payment
from payments import services
from payments.models import MpesaSettings, Payment
from payments.simulator.server import SANDBOX_PASSKEY

SIMULATOR_URL = "http://127.0.0.1:18080"
SHORTCODE = "174379"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
MISTYPED = ("DF 0OO12", "account", "JAN RENT")  # what payers get wrong


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
    if Payment.objects.filter(account_reference__in=MISTYPED).exists():
        return
    # Months of credited payments are billing.demo's history (mpesa_paid below); today
    # brings a few payers who typed the account wrong: the unmatched queue.
    rng = random.Random(2028)
    now = timezone.now()
    for n, typed in enumerate(MISTYPED):
        when = now - timedelta(hours=n * 3 + 1, minutes=rng.randint(0, 59))
        _mpesa(rng, typed, rng.choice((500, 1500, 2500)), when)
    say("  3 unmatched payments")


def mpesa_paid(rng, customer, amount, at) -> Payment:
    """An M-Pesa payment to `customer` at `at` (a past moment), credited as the
    confirmation would have credited it then: billing's ledger at `at` (invoices
    settled, prepaid terms bought, the customer restored). No receipt SMS: months of
    them would bury the message log."""
    receipt = "U" + "".join(rng.choice(LETTERS) for _ in range(9))
    payment = Payment.objects.create(
        method=Payment.Method.MPESA,
        reference=receipt,
        amount=amount,
        account_reference=customer.account,
        msisdn="2547 ***** " + f"{rng.randint(0, 999):03d}",
        payer_name=customer.name.split()[0].upper(),
        paid_at=at,
        received_at=at,
        via_c2b=True,
    )
    entry = record_payment(
        customer,
        amount,
        actor="M-Pesa",
        reference=receipt,
        description=f"M-Pesa payment {receipt}",
        at=at,
    )
    Payment.objects.filter(pk=payment.pk).update(
        customer=customer,
        matched_by="account",
        ledger_entry=entry,
        state=Payment.State.CREDITED,
        credited_at=at,
    )
    return payment


def _mpesa(rng, account_reference: str, amount, when) -> None:
    receipt = "U" + "".join(rng.choice(LETTERS) for _ in range(9))
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
