"""manage.py sync_router --schema S NAME: push the desired state to a router and report
what drifted (on the router but not billed, billed but missing, wrong profile/state)."""

from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from network import routeros, services
from network.models import DriftItem, Router


class Command(TenantCommand):
    help = "Push the billed state to a router and report what had drifted."

    def add_tenant_arguments(self, parser):
        parser.add_argument("name", help="the router's name")
        parser.add_argument(
            "--disable-unbilled",
            action="store_true",
            help="also disable logins on the router that nobody pays for",
        )
        parser.add_argument(
            "--check-only", action="store_true", help="report the drift, change nothing"
        )

    def handle_tenant(self, isp, *args, **opts):
        router = Router.objects.filter(name__iexact=opts["name"]).first()
        if router is None:
            raise CommandError(f"no router named {opts['name']!r}")
        try:
            if opts["check_only"]:
                report, outcomes = services.check_drift(router), {}
            else:
                report, outcomes = services.sync_router(
                    router, actor="sync_router command", disable_unbilled=opts["disable_unbilled"]
                )
        except routeros.RouterError as exc:
            raise CommandError(str(exc)) from None
        for item in report.items:
            self.stdout.write(
                f"{item.get_kind_display():<32} {item.username:<24} "
                f"{item.detail}  (KES {item.monthly_value}/month)"
            )
        changed = sum(1 for o in outcomes.values() if o.changes)
        kinds = ", ".join(
            f"{report.count(k)} {label.lower()}" for k, label in DriftItem.Kind.choices
        )
        self.stdout.write(
            f"{router.name}: {report.checked} items checked in "
            f"{report.seconds:.1f} s; drift: {kinds}; at stake KES "
            f"{report.at_stake}/month; {changed} account(s) changed on the router"
        )
