from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from network.services import RouterError, add_router


class Command(TenantCommand):
    help = "Add a MikroTik router record (its password is stored encrypted)."

    def add_tenant_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--tls", action="store_true", help="API over TLS (port 8729)")
        parser.add_argument(
            "--no-check", action="store_true", help="save without first connecting to the router"
        )

    def handle_tenant(self, isp, *args, **opts):
        port = opts["port"] or (8729 if opts["tls"] else 8728)
        try:
            router = add_router(
                actor="add_router command",
                name=opts["name"],
                host=opts["host"],
                port=port,
                username=opts["username"],
                password=opts["password"],
                use_tls=opts["tls"],
                check_connection=not opts["no_check"],
            )
        except RouterError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"router {router.name} added ({router.host}:{router.port})")
