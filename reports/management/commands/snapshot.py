"""manage.py snapshot --schema S [--date YYYY-MM-DD]: the daily subscription snapshot of
a day (default yesterday, Africa/Nairobi) from the billing timeline (reports.snapshots).
A day already taken is left as it is. Prints the day, the services, the MRR and whether
the day is estimated; bad input is a one-line error and writes nothing."""

from datetime import date, timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from ispops.tenancy.commands import TenantCommand
from reports import snapshots


class Command(TenantCommand):
    help = "Take the daily subscription snapshot of a day (default yesterday)."

    def add_tenant_arguments(self, parser):
        parser.add_argument("--date", help="the day, YYYY-MM-DD (default yesterday)")

    def handle_tenant(self, isp, *args, **opts):
        now = timezone.now()
        day = timezone.localdate(now) - timedelta(days=1)
        if opts["date"]:
            try:
                day = date.fromisoformat(opts["date"].strip())
            except ValueError:
                raise CommandError(f"--date must be YYYY-MM-DD, not {opts['date']!r}") from None
        try:
            snap = snapshots.take(day, as_of=now)
        except snapshots.SnapshotError as exc:
            raise CommandError(str(exc)) from None
        estimated = " (estimated)" if snap.estimated else ""
        self.stdout.write(f"{snap.day}: {snap.services} services, MRR {snap.mrr}{estimated}")
