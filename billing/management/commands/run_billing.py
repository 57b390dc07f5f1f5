"""manage.py run_billing --schema S [--date YYYY-MM-DD]: the billing run for that day.
Running it twice for the same day bills nobody twice."""

from datetime import date

from django.core.management.base import CommandError
from django.utils import timezone

from billing.services import BillingError, moment_for, run_billing
from ispops.tenancy.commands import TenantCommand


def parse_day(text: str | None) -> date:
    if not text:
        return timezone.localdate()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"bad --date {text!r}: use YYYY-MM-DD") from None


class Command(TenantCommand):
    help = "Charge every postpaid account's due periods for a day (once, however often run)."

    def add_tenant_arguments(self, parser):
        parser.add_argument("--date", help="the day to bill (default: today, Africa/Nairobi)")

    def handle_tenant(self, isp, *args, **opts):
        day = parse_day(opts["date"])
        progress = None
        if opts["verbosity"] > 1:

            def progress(done, total):
                self.stderr.write(f"billed {done}/{total} accounts")

        try:
            at = moment_for(day, timezone.now())
        except BillingError as exc:
            raise CommandError(str(exc)) from None
        run = run_billing(day, actor="run_billing command", at=at, progress=progress)
        self.stdout.write(
            f"billing run {day}: {run.total_accounts} accounts, {run.invoice_count} invoices, "
            f"KES {run.amount}, {len(run.errors)} errors"
        )
        if run.errors:
            raise CommandError(
                f"{len(run.errors)} account(s) could not be billed; see billing run {run.pk}"
            )
