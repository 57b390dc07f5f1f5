from inventory.imports import COLUMNS, import_items
from ispops.lib.csvimport import finish, read_csv_file
from ispops.tenancy.commands import TenantCommand


class Command(TenantCommand):
    help = f"Import equipment items from CSV: {COLUMNS}. All rows or none."

    def add_tenant_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")

    def handle_tenant(self, isp, *args, **opts):
        text = read_csv_file(opts["file"])
        report = import_items(text, actor="import_items command", dry_run=opts["dry_run"])
        finish(self, report)
