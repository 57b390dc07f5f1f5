from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from network import fup
from subscribers.models import ServiceAccount, ServiceType


class Command(TenantCommand):
    help = (
        "Add data to a PPPoE account's current usage period (a top-up the customer "
        "bought); full speed comes back within a minute if it covers what was used."
    )

    def add_tenant_arguments(self, parser):
        parser.add_argument("username", help="the PPPoE login")
        parser.add_argument("gigabytes", type=int, help="whole GB (10^9 bytes) to add")

    def handle_tenant(self, isp, *args, **opts):
        account = (
            ServiceAccount.objects.filter(username=opts["username"], service=ServiceType.PPPOE)
            .exclude(status=ServiceAccount.Status.TERMINATED)
            .select_related("plan")
            .first()
        )
        if account is None:
            raise CommandError(f"no live PPPoE account {opts['username']!r}")
        try:
            row = fup.top_up(account, opts["gigabytes"], actor=f"{self.command_name()} command")
        except fup.TopUpError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{row.gigabytes} GB added to {account.username} for the period from "
            f"{row.period_start:%Y-%m-%d}"
        )
