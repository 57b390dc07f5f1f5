from pathlib import Path

from django.core.management.base import CommandError

from hotspot.captive import CaptiveError, router_pages
from ispops.tenancy.commands import TenantCommand
from network.models import Router


class Command(TenantCommand):
    help = (
        "Write a router's hotspot login.html (and its companions) that forward a phone to "
        "this ISP's /hs/ page; upload them to the hotspot's html directory."
    )

    def add_tenant_arguments(self, parser):
        parser.add_argument("router", help="the router's name (or id)")
        parser.add_argument(
            "--out", default=".", help="directory to write into (default: the current one)"
        )

    def handle_tenant(self, isp, *args, **opts):
        name = opts["router"]
        router = Router.objects.filter(name=name).first()
        if router is None and name.isdigit():
            router = Router.objects.filter(pk=int(name)).first()
        if router is None:
            raise CommandError(f"no router named {name!r}")
        try:
            pages = router_pages(router)
        except CaptiveError as exc:
            raise CommandError(str(exc)) from None
        out = Path(opts["out"])
        out.mkdir(parents=True, exist_ok=True)
        for filename, text in pages.items():
            (out / filename).write_text(text, encoding="utf-8")
            self.stdout.write(str(out / filename))
