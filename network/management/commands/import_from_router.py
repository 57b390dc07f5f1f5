from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from network.models import Router
from network.router_import import import_router, parse_price
from network.routeros import RouterError
from subscribers.services import format_speed


def _pairs(values, what: str) -> dict:
    pairs = {}
    for value in values or []:
        key, sep, amount = value.partition("=")
        if not sep or not key.strip() or not amount.strip():
            raise CommandError(f"--{what} {value!r}: use NAME=VALUE")
        pairs[key.strip()] = amount.strip()
    return pairs


class Command(TenantCommand):
    help = (
        "Import a MikroTik's PPP secrets and hotspot users as subscribers, and the profiles "
        "they use as plans. All or nothing; a login already here is left alone."
    )

    def add_tenant_arguments(self, parser):
        parser.add_argument("router", help="the router's name, as on the routers page")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")
        parser.add_argument(
            "--price",
            action="append",
            metavar="PROFILE=AMOUNT",
            help="price of the plan made from this profile (repeat for each)",
        )
        parser.add_argument(
            "--map",
            action="append",
            metavar="PROFILE=PLAN",
            help="put this profile's users on an existing plan (hotspot:PROFILE for hotspot)",
        )

    def handle_tenant(self, isp, *args, **opts):
        name = opts["router"]
        router = (
            Router.objects.filter(name=name).first()
            or Router.objects.filter(name__iexact=name).first()
        )
        if router is None:
            raise CommandError(f"no router named {name!r}")
        try:
            prices = {k: parse_price(v) for k, v in _pairs(opts["price"], "price").items()}
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        mapping = _pairs(opts["map"], "map")
        try:
            result = import_router(
                router,
                actor="import_from_router command",
                prices=prices,
                mapping=mapping,
                dry_run=opts["dry_run"],
            )
        except RouterError as exc:
            raise CommandError(str(exc)) from None
        preview = result.preview
        out = self.stdout
        out.write(
            f"router {router}: {preview.secrets} PPP secret(s), "
            f"{preview.hotspot_users} hotspot user(s), read in {preview.read_seconds:.1f} s"
        )
        for plan in preview.new_plans:
            price = "no price: set a price" if plan.needs_price else f"price {plan.price}"
            out.write(
                f"new plan {plan.name} ({plan.service}, {plan.download} down, {plan.upload} up): "
                f"{plan.users} subscriber(s), {price}"
            )
        for reused in preview.reused_plans:
            how = "mapped to" if reused.mapped else "uses"
            out.write(
                f"profile {reused.profile} {how} plan {reused.plan.name} "
                f"({format_speed(reused.plan.download_kbps)} down): {reused.users} subscriber(s)"
            )
        counts = preview.by_status
        out.write(
            f"to import: {len(preview.to_import)} "
            f"(active {counts['active']}, suspended {counts['suspended']}); "
            f"already here: {preview.already_here}"
        )
        for error in result.errors:
            self.stderr.write(str(error))
        if result.errors:
            raise CommandError(result.summary())
        out.write(f"{result.summary()} ({result.seconds:.1f} s)")
