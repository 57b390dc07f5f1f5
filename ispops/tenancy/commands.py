"""Base for per-ISP management commands: `--schema S` picks the ISP, the command body
runs inside its schema, and a bad schema is a one-line error that changes nothing."""

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from ispops import audit
from ispops.tenancy.models import Isp


class TenantCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--schema", required=True, help="the ISP's schema name")
        self.add_tenant_arguments(parser)

    def add_tenant_arguments(self, parser):
        pass

    def handle(self, *args, **opts):
        schema = opts["schema"]
        isp = Isp.objects.filter(schema_name=schema).exclude(schema_name="public").first()
        if isp is None:
            raise CommandError(f"no ISP with schema {schema!r}")
        if isp.status != Isp.Status.ACTIVE:
            raise CommandError(f"ISP {schema!r} is {isp.get_status_display().lower()}")
        with tenant_context(isp), audit.acting_as(f"{self.command_name()} command"):
            return self.handle_tenant(isp, *args, **opts)

    def command_name(self) -> str:
        return self.__module__.rsplit(".", 1)[-1]

    def handle_tenant(self, isp, *args, **opts):
        raise NotImplementedError
