import json

from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from subscribers.services import SubscriberError, account_status


class Command(TenantCommand):
    help = "One line of JSON: the customer's service accounts, balance and expiry."

    def add_tenant_arguments(self, parser):
        parser.add_argument("account")

    def handle_tenant(self, isp, *args, **opts):
        try:
            status = account_status(opts["account"])
        except SubscriberError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(status, separators=(",", ":")))
