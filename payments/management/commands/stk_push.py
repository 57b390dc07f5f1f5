"""manage.py stk_push --schema S ACCOUNT --phone 2547XXXXXXXX --amount N: send a payment
prompt to the phone; the callback then credits ACCOUNT. Prints the CheckoutRequestID."""

from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from payments import services
from payments.models import StkRequest


class Command(TenantCommand):
    help = "Send an M-Pesa STK push for an account and print its CheckoutRequestID."

    def add_tenant_arguments(self, parser):
        parser.add_argument("account", help="the customer's account number")
        parser.add_argument("--phone", required=True, help="payer's number, e.g. 254712345678")
        parser.add_argument("--amount", required=True, help="whole shillings")

    def handle_tenant(self, isp, *args, **opts):
        customer = services.find_customer(opts["account"])
        if customer is None:
            raise CommandError(f"no customer with account {opts['account']!r}")
        try:
            stk = services.start_stk_push(
                customer,
                phone=opts["phone"],
                amount=opts["amount"],
                actor="stk_push command",
                source=StkRequest.Source.COMMAND,
            )
        except services.PaymentError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(stk.checkout_request_id)
