"""manage.py show_mpesa_urls --schema S: the callback URLs (with the ISP's secret token)
to give Safaricom. They are secrets: anyone holding them can post fake callbacks."""

from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from payments import services
from payments.models import MpesaSettings


class Command(TenantCommand):
    help = "Print the ISP's M-Pesa callback URLs (validation, confirmation, STK callback)."

    def handle_tenant(self, isp, *args, **opts):
        cfg = MpesaSettings.load()
        try:
            urls = services.callback_urls(cfg)
        except services.PaymentError as exc:
            raise CommandError(f"{exc} (configure_mpesa --public-url URL)") from None
        self.stdout.write(f"validation   {urls['validation']}")
        self.stdout.write(f"confirmation {urls['confirmation']}")
        self.stdout.write(f"stk          {urls['stk']}")
