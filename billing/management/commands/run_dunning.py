import re
from datetime import date

from django.core.management.base import CommandError
from django.utils import timezone

from billing.dunning import run_dunning
from billing.services import BillingError, moment_for
from ispops.tenancy.commands import TenantCommand


class Command(TenantCommand):
    help = (
        "Take the dunning steps due on a day (default today): reminders, soft and hard "
        "suspensions. Safe to run again: nothing is done twice."
    )

    def add_tenant_arguments(self, parser):
        parser.add_argument("--date", help="the day to run for, YYYY-MM-DD (default: today)")

    def handle_tenant(self, isp, *args, **opts):
        now = timezone.now()
        day = parse_day(opts["date"]) if opts["date"] else timezone.localdate(now)
        try:
            at = moment_for(day, now)
        except BillingError as exc:
            raise CommandError(str(exc)) from None
        report = run_dunning(day, actor="run_dunning command", at=at)
        self.stdout.write(report.summary())


def parse_day(text: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"bad date {text!r}: use YYYY-MM-DD") from None
