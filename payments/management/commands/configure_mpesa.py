"""manage.py configure_mpesa --schema S --base-url URL --shortcode N --type paybill|till
--consumer-key K --consumer-secret S --passkey P --public-url URL

Stores the ISP's Daraja settings (the secrets encrypted). Options left out keep their
stored value, so a secret can be rotated alone."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from ispops.tenancy.commands import TenantCommand
from payments import services
from payments.daraja import DarajaError


class Command(TenantCommand):
    help = "Store an ISP's M-Pesa (Daraja) settings; secrets are encrypted at rest."

    def add_tenant_arguments(self, parser):
        parser.add_argument(
            "--base-url", help="Daraja environment, e.g. https://api.safaricom.co.ke"
        )
        parser.add_argument("--shortcode", help="paybill number, or the till's store number")
        parser.add_argument("--type", choices=["paybill", "till"], dest="kind")
        parser.add_argument("--till-number", help="till only: the till number customers pay")
        parser.add_argument("--consumer-key")
        parser.add_argument("--consumer-secret")
        parser.add_argument("--passkey")
        parser.add_argument("--public-url", help="this ISP's https address Safaricom calls back")
        parser.add_argument("--c2b-version", choices=["v1", "v2"])
        parser.add_argument(
            "--accept-unknown-accounts",
            action="store_true",
            help="at C2B validation, accept payments to account numbers nobody has",
        )
        parser.add_argument(
            "--allowed-ips", help="comma-separated addresses/networks callbacks may come from"
        )
        parser.add_argument(
            "--register-urls",
            action="store_true",
            help="then register the C2B validation and confirmation URLs with Safaricom",
        )

    def handle_tenant(self, isp, *args, **opts):
        shortcode = opts["shortcode"]
        if shortcode is not None and not (shortcode.isdigit() and 5 <= len(shortcode) <= 7):
            raise CommandError(f"--shortcode must be 5 to 7 digits, not {shortcode!r}")
        allowed = opts["allowed_ips"]
        fields = {
            "base_url": opts["base_url"],
            "shortcode": shortcode,
            "kind": opts["kind"],
            "till_number": opts["till_number"],
            "consumer_key": opts["consumer_key"],
            "consumer_secret": opts["consumer_secret"],
            "passkey": opts["passkey"],
            "public_url": opts["public_url"],
            "c2b_version": opts["c2b_version"],
            "allowed_ips": "\n".join(a.strip() for a in allowed.split(",")) if allowed else None,
        }
        if opts["accept_unknown_accounts"]:
            fields["reject_unknown_accounts"] = False
        try:
            cfg = services.configure(actor="configure_mpesa command", **fields)
        except ValidationError as exc:
            reasons = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"not saved: {reasons}") from None
        missing = [
            name
            for name in ("shortcode", "consumer_key", "consumer_secret", "passkey", "public_url")
            if not getattr(cfg, name)
        ]
        state = "ready" if not missing else "still missing " + ", ".join(missing)
        self.stdout.write(
            f"M-Pesa settings saved for {isp.schema_name}: {cfg.get_kind_display()} "
            f"{cfg.shortcode or '-'} at {cfg.base_url} ({state})"
        )
        if opts["register_urls"]:
            try:
                services.register_c2b_urls(actor="configure_mpesa command")
            except (services.PaymentError, DarajaError) as exc:
                raise CommandError(
                    f"settings saved, but the URLs were not registered: {exc}"
                ) from None
            self.stdout.write("C2B URLs registered with Safaricom")
