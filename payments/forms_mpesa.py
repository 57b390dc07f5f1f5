"""Forms of the M-Pesa staff pages: the ISP's Daraja settings, an STK push sent by staff,
and the statement upload of the reconciliation page."""

import ipaddress
from decimal import Decimal
from urllib.parse import urlsplit

from django import forms

from ispops.lib.phones import InvalidPhone, normalise_phone
from payments import reconcile, services
from payments.models import BANNED_IN_URLS, MpesaSettings
from subscribers.models import Customer

SECRETS = ("consumer_key", "consumer_secret", "passkey")
# Safaricom refuses to register callback URLs holding these words (shared/daraja.md §3.2)
PRODUCTION_HOST = "api.safaricom.co.ke"


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        max_length=500,
        # Never sent back to the browser, not even after an error.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class MpesaSettingsForm(forms.Form):
    base_url = forms.URLField(
        label="Daraja environment",
        assume_scheme="https",
        help_text="https://sandbox.safaricom.co.ke for testing, https://api.safaricom.co.ke live.",
    )
    shortcode = forms.RegexField(
        regex=r"^\d{5,7}$",
        label="Shortcode",
        error_messages={"invalid": "A shortcode is 5 to 7 digits."},
        help_text="The paybill number, or for a till the store (head office) number.",
    )
    kind = forms.ChoiceField(label="Type", choices=MpesaSettings.Kind.choices)
    till_number = forms.RegexField(
        regex=r"^\d{5,7}$",
        required=False,
        label="Till number",
        error_messages={"invalid": "A till number is 5 to 7 digits."},
        help_text="Till only: the number customers pay (Buy Goods).",
    )
    consumer_key = _secret_field("Consumer key")
    consumer_secret = _secret_field("Consumer secret")
    passkey = _secret_field("Passkey (Lipa na M-Pesa Online)")
    public_url = forms.URLField(
        label="Public URL",
        required=False,
        assume_scheme="https",
        help_text="This ISP's own address that Safaricom calls back, e.g. "
        "https://billing.example.co.ke",
    )
    c2b_version = forms.ChoiceField(
        label="C2B API version",
        choices=[("v2", "v2 (new apps)"), ("v1", "v1")],
        help_text="Use the version your Daraja app has; the wrong one is refused.",
    )
    reject_unknown_accounts = forms.BooleanField(
        label="Refuse payments to unknown account numbers",
        required=False,
        help_text=MpesaSettings._meta.get_field("reject_unknown_accounts").help_text,
    )
    allowed_ips = forms.CharField(
        label="Callbacks only from",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Optional: one address or network a line (e.g. 196.201.214.0/24). "
        "Empty: from anywhere.",
    )

    def __init__(self, *args, cfg: MpesaSettings, **kwargs):
        self.cfg = cfg
        initial = {
            name: getattr(cfg, name)
            for name in self.base_fields
            if name not in SECRETS and hasattr(cfg, name)
        }
        super().__init__(*args, initial=initial, **kwargs)
        for name in SECRETS:
            stored = bool(getattr(cfg, name))
            self.fields[name].help_text = (
                "Stored. Leave blank to keep it." if stored else "Not set."
            )
            self.fields[name].stored = stored

    def clean_allowed_ips(self):
        lines = [line.strip() for line in self.cleaned_data["allowed_ips"].splitlines()]
        entries, bad = [], []
        for line in lines:
            if not line:
                continue
            try:
                entries.append(str(ipaddress.ip_network(line, strict=False)))
            except ValueError:
                bad.append(line)
        if bad:
            raise forms.ValidationError("Not an IP address or network: " + ", ".join(bad[:5]))
        return "\n".join(entries)

    def clean_public_url(self):
        url = self.cleaned_data["public_url"].rstrip("/")
        lowered = url.lower()
        for word in BANNED_IN_URLS:
            if word in lowered:
                raise forms.ValidationError(
                    f'Safaricom refuses callback URLs containing "{word}": use another '
                    "address for this ISP."
                )
        return url

    def clean(self):
        data = super().clean()
        if data.get("kind") == MpesaSettings.Kind.TILL and not data.get("till_number"):
            self.add_error("till_number", "A till needs its till number.")
        base, public = data.get("base_url") or "", data.get("public_url") or ""
        live = urlsplit(base).hostname == PRODUCTION_HOST
        if live and public and urlsplit(public).scheme != "https":
            self.add_error("public_url", "Live M-Pesa calls back only https addresses.")
        return data

    def settings_fields(self) -> dict:
        """What services.configure takes: a blank secret (None) keeps the stored one."""
        data = dict(self.cleaned_data)
        for name in SECRETS:
            data[name] = data[name] or None
        return data


class StkForm(forms.Form):
    account = forms.CharField(
        label="Account number", max_length=40, help_text="The customer's account number."
    )
    phone = forms.CharField(
        label="Phone", max_length=20, help_text="The M-Pesa number that gets the prompt."
    )
    amount = forms.DecimalField(
        label="Amount (KES)",
        min_value=Decimal("1"),
        max_value=Decimal(services.MAX_STK_AMOUNT),
        max_digits=9,
        decimal_places=2,
        help_text="Whole shillings: cents are rounded up.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_account(self):
        text = self.cleaned_data["account"]
        customer = services.find_customer(text)
        if customer is not None:
            visible = Customer.objects.visible_to(self.user).filter(pk=customer.pk)
            customer = customer if visible.exists() else None
        if customer is None:
            raise forms.ValidationError(f"No customer has the account number {text}.")
        self.customer = customer
        return customer.account

    def clean_phone(self):
        try:
            return normalise_phone(self.cleaned_data["phone"])
        except InvalidPhone as exc:
            reason = str(exc)
            raise forms.ValidationError(f"{reason[:1].upper()}{reason[1:]}.") from None


class StatementForm(forms.Form):
    statement = forms.FileField(
        label="M-Pesa statement (CSV)",
        help_text="The org portal's statement export, as CSV, up to 5 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_statement(self):
        upload = self.cleaned_data["statement"]
        if upload.size > reconcile.MAX_BYTES:
            raise forms.ValidationError("The file is over 5 MB: export a shorter period.")
        try:
            self.parsed = reconcile.parse_statement(upload.read())
        except reconcile.StatementError as exc:
            raise forms.ValidationError(f"This file cannot be read: {exc}.") from None
        return upload
