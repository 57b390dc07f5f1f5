"""manage.py demo_routers: one line per demo router, "PORT USER PASSWORD NAME", for
scripts/run.sh to start a RouterOS emulator for each."""

from django.core.management.base import BaseCommand

from subscribers.demo import DEMO_ROUTER_PASSWORD, DEMO_ROUTER_USER, DEMO_ROUTERS


class Command(BaseCommand):
    help = "Print the demo routers' emulator ports and logins."

    def handle(self, *args, **opts):
        for name, port, _, _ in DEMO_ROUTERS:
            self.stdout.write(f"{port} {DEMO_ROUTER_USER} {DEMO_ROUTER_PASSWORD} {name}")
