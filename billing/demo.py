"""Demo billing data (seed_demo): the ISP's invoice identity and two months of postpaid
invoices (payments.demo pays most of them). Deterministic; run once."""

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
        cfg.paybill = "174379"  # the Daraja simulator's sandbox shortcode
        cfg.phone = "0709 000 000"
        cfg.email = "billing@demo.ispops.local"
        cfg.save()
    if LedgerEntry.objects.exists():
        return
    today = timezone.localdate()
    start = today - timedelta(days=62)
    # Postpaid accounts started two months ago; bill each month since.
    ServiceAccount.objects.filter(plan__billing="postpaid", status="active").update(
        activated_at=timezone.now() - timedelta(days=62)
    )
    for offset in (0, 31, 62):
        services.run_billing(start + timedelta(days=offset), actor="seed_demo")
    say(f"  {Invoice.objects.count()} invoices")
