"""Demo billing data (seed_demo): the ISP's invoice identity, two months of postpaid
invoices with most of them paid, and prepaid payments. Deterministic; run once."""

import random
from datetime import timedelta

from django.utils import timezone

from billing import services
from billing.models import BillingSettings, Invoice, LedgerEntry
from subscribers.models import ServiceAccount


def seed(out=None) -> None:
    say = out or (lambda text: None)
    cfg = BillingSettings.load()
    if not cfg.legal_name:
        cfg.legal_name = "Demo Fibre & Wireless Ltd"
        cfg.address = "Langata Road, Nairobi\nP.O. Box 12345-00100"
        cfg.kra_pin = "P051234567X"
        cfg.paybill = "888555"
        cfg.phone = "0709 000 000"
        cfg.email = "billing@demo.ispops.local"
        cfg.save()
    if LedgerEntry.objects.exists():
        return
    rng = random.Random(2027)
    today = timezone.localdate()
    start = today - timedelta(days=62)
    # Postpaid accounts started two months ago; bill each month since.
    ServiceAccount.objects.filter(plan__billing="postpaid", status="active").update(
        activated_at=timezone.now() - timedelta(days=62)
    )
    for offset in (0, 31, 62):
        services.run_billing(start + timedelta(days=offset), actor="seed_demo")
    paid = 0
    for invoice in Invoice.objects.filter(status="open").select_related("customer"):
        # Most pay; recent invoices are less often paid yet.
        if invoice.issued_on < today - timedelta(days=20) or rng.random() < 0.5:
            services.record_payment(
                invoice.customer,
                invoice.total,
                actor="seed_demo",
                reference=f"DEMO{invoice.pk:06d}",
                description="M-Pesa payment (demo)",
            )
            paid += 1
    prepaid = 0
    for account in ServiceAccount.objects.filter(
        plan__billing="prepaid", status="active", expires_at__isnull=False
    ).select_related("plan", "customer")[:120]:
        services.record_payment(
            account.customer,
            account.plan.price,
            actor="seed_demo",
            reference=f"DEMOP{account.pk:05d}",
            description="M-Pesa payment (demo)",
        )
        prepaid += 1
    say(f"  {Invoice.objects.count()} invoices, {paid} paid; {prepaid} prepaid payments")
