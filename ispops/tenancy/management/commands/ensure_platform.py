"""manage.py ensure_platform: the public tenant row and host, so the platform page routes."""

from django.core.management.base import BaseCommand

from ispops.tenancy.management.commands.seed_demo import ensure_public_tenant


class Command(BaseCommand):
    help = "Make sure the platform host (ISPOPS_PLATFORM_DOMAIN) routes to the public schema."

    def handle(self, *args, **opts):
        ensure_public_tenant()
        self.stdout.write("platform host ready")
