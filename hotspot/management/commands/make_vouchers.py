"""manage.py make_vouchers --schema S --package NAME --count N [--agent EMAIL] [--pdf FILE]:
a batch of voucher cards. Prints the batch id; with --pdf, writes the printable cards
(A4, 50 a page). Bad input is a one-line error and creates nothing."""

import os
from pathlib import Path

from django.core.management.base import CommandError
from django.db import transaction

from hotspot import agents, cards, vouchers
from hotspot.models import Package
from ispops.staff.models import User
from ispops.tenancy.commands import TenantCommand


class Command(TenantCommand):
    help = "Print a batch of hotspot voucher cards; prints the batch id."

    def add_tenant_arguments(self, parser):
        parser.add_argument("--package", required=True, help="the package's name")
        parser.add_argument("--count", required=True, type=int, help="how many cards")
        parser.add_argument("--agent", help="the voucher agent's login email: cards go to them")
        parser.add_argument("--pdf", help="write the printable cards to this file")

    def handle_tenant(self, isp, *args, **opts):
        package = Package.objects.filter(name__iexact=opts["package"].strip()).first()
        if package is None:
            raise CommandError(f"no package named {opts['package']!r}")
        if not package.is_active:
            raise CommandError(f"package {package.name!r} is no longer sold")
        count = opts["count"]
        if not 1 <= count <= vouchers.MAX_BATCH:
            raise CommandError(f"--count must be 1 to {vouchers.MAX_BATCH}, not {count}")
        agent = None
        if opts["agent"]:
            agent = User.objects.filter(email__iexact=opts["agent"].strip()).first()
            if agent is None:
                raise CommandError(f"no login {opts['agent']!r}")
        pdf = Path(opts["pdf"]) if opts["pdf"] else None
        if pdf is not None:
            folder = pdf.parent.resolve()
            if not folder.is_dir() or not os.access(folder, os.W_OK) or pdf.is_dir():
                raise CommandError(f"cannot write {opts['pdf']!r}")
        try:
            # The PDF is made inside the transaction: a card file that cannot be
            # written leaves no batch behind.
            with transaction.atomic():
                batch = vouchers.generate_batch(
                    package, count, agent=agent, actor="make_vouchers command"
                )
                if pdf is not None:
                    pdf.write_bytes(cards.cards_pdf(batch))
        except (vouchers.VoucherError, agents.AgentError) as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot write {opts['pdf']!r}: {exc.strerror}") from None
        self.stdout.write(str(batch.pk))
        if opts["verbosity"] > 1:
            where = f", cards in {pdf}" if pdf else ""
            self.stderr.write(f"batch {batch.pk}: {count} x {package.name}{where}")
