from ispops.lib.csvimport import finish, read_csv_file
from ispops.tenancy.commands import TenantCommand
from subscribers.imports import import_subscribers


class Command(TenantCommand):
    help = (
        "Import subscribers from CSV: account,name,phone,email,plan,username,password,"
        "router,status[,expires]. All rows or none."
    )

    def add_tenant_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")

    def handle_tenant(self, isp, *args, **opts):
        text = read_csv_file(opts["file"])
        progress = None
        if opts["verbosity"] > 1:

            def progress(done, total):
                self.stderr.write(f"checked {done}/{total}")

        report = import_subscribers(
            text, actor="import_subscribers command", dry_run=opts["dry_run"], progress=progress
        )
        finish(self, report)
