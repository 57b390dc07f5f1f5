from ispops.lib.csvimport import finish, read_csv_file
from ispops.tenancy.commands import TenantCommand
from subscribers.imports import import_plans


class Command(TenantCommand):
    help = "Import plans from CSV: name,price,cycle,download,upload,service[,billing][,data_cap_gb]"

    def add_tenant_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")

    def handle_tenant(self, isp, *args, **opts):
        report = import_plans(
            read_csv_file(opts["file"]), actor="import_plans command", dry_run=opts["dry_run"]
        )
        finish(self, report)
