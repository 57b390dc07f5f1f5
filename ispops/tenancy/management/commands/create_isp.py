"""manage.py create_isp: a new ISP with its schema, domain and owner login."""

from django.core.management.base import BaseCommand, CommandError

from ispops.tenancy.services import IspInputError, create_isp


class Command(BaseCommand):
    help = "Create an ISP (tenant schema, domain, owner login). Idempotent on --schema."

    def add_arguments(self, parser):
        parser.add_argument("--schema", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", required=True, help="e.g. fastnet.localhost")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", required=True)

    def handle(self, *args, **opts):
        try:
            isp, created = create_isp(
                schema=opts["schema"],
                name=opts["name"],
                domain=opts["domain"],
                owner_email=opts["owner_email"],
                owner_password=opts["owner_password"],
                actor="create_isp command",
            )
        except IspInputError as exc:
            raise CommandError(str(exc)) from None
        verb = "created" if created else "already exists, unchanged:"
        self.stdout.write(f"ISP {isp.name} {verb} schema={isp.schema_name} host={isp.primary_host}")
