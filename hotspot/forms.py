"""Forms of the hotspot staff pages: packages, voucher batches, selling a card, and the
agents' ledger. Units are chosen on the form and stored as the model keeps them
(validity in minutes, data in bytes with 1 GB = 10^9 bytes, speeds in kbit/s)."""

import datetime
from decimal import Decimal

from django import forms
from django.utils import timezone

from hotspot import agents, entitlements, vouchers
from hotspot.captive import normalise
from hotspot.models import AgentEntry, BypassOffer, Package, Voucher
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.staff.scoping import in_branches_of, staff_of_branches_of
from network.models import Router
from subscribers.models import NetworkSite

VALIDITY_UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}
DATA_UNITS = {"MB": 10**6, "GB": 10**9}


def _split(total: int, units: dict) -> tuple[int, str]:
    """The largest unit that divides `total` exactly: (amount, unit)."""
    for name, size in sorted(units.items(), key=lambda item: -item[1]):
        if total % size == 0:
            return total // size, name
    smallest = min(units, key=units.get)
    return total // units[smallest], smallest


class PackageForm(forms.ModelForm):
    validity = forms.IntegerField(min_value=1, label="Validity")
    validity_unit = forms.ChoiceField(
        choices=[(u, u) for u in VALIDITY_UNITS], initial="hours", label="Unit"
    )
    data_limit = forms.DecimalField(
        required=False,
        min_value=Decimal("0.001"),
        max_digits=10,
        decimal_places=3,
        label="Data limit",
        help_text="Empty: unlimited. 1 GB = 1,000 MB, as routers count.",
    )
    data_unit = forms.ChoiceField(choices=[(u, u) for u in DATA_UNITS], initial="GB", label="Unit")

    class Meta:
        model = Package
        fields = [
            "name",
            "price",
            "starts",
            "download_kbps",
            "upload_kbps",
            "devices",
            "idle_timeout_minutes",
            "mac_cookie_hours",
            "routers",
            "is_active",
        ]
        labels = {
            "price": "Price (KES)",
            "starts": "Time counts",
            "download_kbps": "Download (kbit/s)",
            "upload_kbps": "Upload (kbit/s)",
            "devices": "Devices at once",
            "routers": "Sold at these routers",
            "is_active": "On sale",
        }
        help_texts = {
            "download_kbps": "1 Mbit/s = 1000.",
            "routers": "None ticked: sold at every hotspot router.",
        }
        widgets = {"routers": forms.CheckboxSelectMultiple}

    field_order = ["name", "price", "validity", "validity_unit", "starts", "data_limit"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["routers"].queryset = in_branches_of(user, Router.objects.all())
        package = self.instance
        if package.pk:
            amount, unit = _split(package.validity_minutes, VALIDITY_UNITS)
            self.initial.update(validity=amount, validity_unit=unit)
            if package.data_limit_bytes:
                unit = "GB" if package.data_limit_bytes >= 10**9 else "MB"
                size = Decimal(package.data_limit_bytes) / DATA_UNITS[unit]
                self.initial.update(data_limit=size.normalize(), data_unit=unit)

    def clean(self):
        data = super().clean()
        if data.get("validity"):
            minutes = data["validity"] * VALIDITY_UNITS[data.get("validity_unit", "minutes")]
            if minutes > 366 * 24 * 60:
                self.add_error("validity", "At most 366 days.")
            self.instance.validity_minutes = minutes
        limit = data.get("data_limit")
        self.instance.data_limit_bytes = (
            int(limit * DATA_UNITS[data.get("data_unit", "GB")]) if limit else None
        )
        return data


class BatchForm(forms.Form):
    package = forms.ModelChoiceField(queryset=Package.objects.filter(is_active=True))
    count = forms.IntegerField(min_value=1, max_value=vouchers.MAX_BATCH, label="Cards")
    price = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=10,
        decimal_places=2,
        label="Price of a card (KES)",
        help_text="Empty: the package's price.",
    )
    site = forms.ModelChoiceField(
        queryset=NetworkSite.objects.none(), required=False, empty_label="Any site"
    )
    agent = forms.ModelChoiceField(
        queryset=agents.agents().none(), required=False, empty_label="No agent (sold by staff)"
    )
    commission_percent = forms.DecimalField(
        min_value=0,
        max_value=100,
        max_digits=5,
        decimal_places=2,
        initial=0,
        label="Agent's commission (%)",
        help_text="Of each card's price, earned when the agent sells it.",
    )
    unsold_expire_on = forms.DateField(
        required=False,
        label="Unsold cards expire after",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: never. Cards not sold by the end of this day stop working.",
    )
    note = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = in_branches_of(user, NetworkSite.objects.all())
        self.fields["agent"].queryset = staff_of_branches_of(
            user, agents.agents().filter(is_active=True)
        )

    def clean_unsold_expire_on(self):
        day = self.cleaned_data["unsold_expire_on"]
        if day is None:
            return None
        if day < timezone.localdate():
            raise forms.ValidationError("Choose today or a later day.")
        # The end of that day in Nairobi.
        start = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time())
        return timezone.make_aware(start)


class SellForm(forms.Form):
    phone = forms.CharField(
        label="Buyer's phone", max_length=20, required=False, help_text="Optional."
    )
    send_sms = forms.BooleanField(label="Send the code to this phone by SMS", required=False)

    def clean_phone(self):
        return _phone(self.cleaned_data["phone"]) if self.cleaned_data["phone"].strip() else ""

    def clean(self):
        data = super().clean()
        if data.get("send_sms") and not data.get("phone") and "phone" not in self.errors:
            self.add_error("phone", "Give the phone to send the code to.")
        return data


class SmsForm(forms.Form):
    phone = forms.CharField(label="Phone", max_length=20)

    def clean_phone(self):
        return _phone(self.cleaned_data["phone"])


def _phone(text: str) -> str:
    try:
        return normalise_phone(text)
    except InvalidPhone as exc:
        raise forms.ValidationError(str(exc)) from None


class EntryForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[
            (AgentEntry.Kind.FLOAT, "Float given (the agent paid in)"),
            (AgentEntry.Kind.PAYOUT, "Paid out to the agent"),
        ]
    )
    amount = forms.DecimalField(
        min_value=Decimal("0.01"), max_digits=12, decimal_places=2, label="Amount (KES)"
    )
    note = forms.CharField(max_length=200, required=False, help_text="e.g. the M-Pesa code.")


class AssignForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=agents.agents().none())

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = staff_of_branches_of(
            user, agents.agents().filter(is_active=True)
        )


class CardFilterForm(forms.Form):
    state = forms.ChoiceField(choices=[("", "Any state"), *Voucher.State.choices], required=False)
    q = forms.CharField(
        label="Code",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Part of a code"}),
    )


# --- devices let through (MAC bypass) -----------------------------------------------------

MAC_HELP = (
    "12 letters and digits, e.g. A4:5E:60:12:34:56. On a TV: Settings > Network (or "
    "About) > Wi-Fi MAC address; on a camera: its label or its app."
)


def _mac(value: str) -> str:
    try:
        return entitlements.normalise_mac(value)
    except entitlements.Refused:
        raise forms.ValidationError(
            "That is not a MAC address: 12 letters and digits, e.g. A4:5E:60:12:34:56."
        ) from None


class BypassOfferForm(forms.ModelForm):
    length = forms.IntegerField(min_value=1, label="Lets a device through for")
    length_unit = forms.ChoiceField(
        choices=[(u, u) for u in VALIDITY_UNITS], initial="days", label="Unit"
    )

    class Meta:
        model = BypassOffer
        fields = ["name", "price", "routers", "is_active"]
        labels = {
            "price": "Price (KES)",
            "routers": "Sold at these routers",
            "is_active": "On sale",
        }
        help_texts = {"routers": "None ticked: sold at every hotspot router."}
        widgets = {"routers": forms.CheckboxSelectMultiple}

    field_order = ["name", "price", "length", "length_unit"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["routers"].queryset = in_branches_of(user, Router.objects.all())
        self.fields["price"].min_value = 0
        if self.instance.pk:
            amount, unit = _split(self.instance.minutes, VALIDITY_UNITS)
            self.initial.update(length=amount, length_unit=unit)

    def clean_price(self):
        price = self.cleaned_data["price"]
        if price is not None and price < 0:
            raise forms.ValidationError("A price is 0 or more.")
        return price

    def clean(self):
        data = super().clean()
        if data.get("length"):
            minutes = data["length"] * VALIDITY_UNITS[data.get("length_unit", "minutes")]
            if minutes > 366 * 24 * 60:
                self.add_error("length", "At most 366 days.")
            self.instance.minutes = minutes
        return data


class BypassForm(forms.Form):
    """Staff let a device through: an offer or a length of their own (or no end), paid
    in cash (the amount is recorded as a sale) or free (a reason needed)."""

    router = forms.ModelChoiceField(queryset=Router.objects.none())
    mac = forms.CharField(label="Device's MAC address", max_length=40, help_text=MAC_HELP)
    offer = forms.ModelChoiceField(
        queryset=BypassOffer.objects.none(), required=False, empty_label="A length of my own"
    )
    length = forms.IntegerField(
        min_value=1, required=False, label="Length", help_text="Without an offer."
    )
    length_unit = forms.ChoiceField(
        choices=[(u, u) for u in VALIDITY_UNITS], initial="days", label="Unit"
    )
    no_end = forms.BooleanField(
        required=False, label="No end (until staff end it)", help_text="Without an offer."
    )
    paid = forms.ChoiceField(
        choices=[("cash", "Paid in cash"), ("free", "Free")], initial="cash", label="Payment"
    )
    amount = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=2,
        label="Cash taken (KES)",
        help_text="Empty with an offer: its price.",
    )
    note = forms.CharField(
        max_length=200, required=False, help_text="e.g. lobby TV. Required for a free pass."
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=40)

    def __init__(self, *args, user, may_give: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.may_give = may_give
        self.fields["router"].queryset = in_branches_of(user, Router.objects.all()).order_by("name")
        self.fields["offer"].queryset = BypassOffer.objects.filter(is_active=True)
        if not may_give:
            self.fields["paid"].choices = [("cash", "Paid in cash")]

    def clean_mac(self):
        return _mac(self.cleaned_data["mac"])

    def clean(self):
        data = super().clean()
        offer, router = data.get("offer"), data.get("router")
        if offer is not None:
            if (
                router is not None
                and offer.routers.exists()
                and not offer.routers.filter(pk=router.pk).exists()
            ):
                self.add_error("offer", f"{offer.name} is not sold at {router.name}.")
            data["minutes"] = offer.minutes
        elif data.get("no_end"):
            if data.get("length"):
                self.add_error("length", "Give a length or tick no end, not both.")
            data["minutes"] = None
        elif data.get("length"):
            minutes = data["length"] * VALIDITY_UNITS[data.get("length_unit", "days")]
            if minutes > 366 * 24 * 60:
                self.add_error("length", "At most 366 days.")
            data["minutes"] = minutes
        else:
            self.add_error("length", "Choose an offer, give a length or tick no end.")
        if data.get("paid") == "cash" and offer is None and data.get("amount") is None:
            self.add_error("amount", "Give the cash taken (0 if none).")
        if data.get("paid") == "free" and not (data.get("note") or "").strip():
            self.add_error("note", "Say why it is free.")
        return data


class BypassBuyForm(forms.Form):
    """The captive page: the device's MAC, an offer, the phone to pay from."""

    mac = forms.CharField(
        label="The TV's or camera's MAC address",
        max_length=40,
        help_text=MAC_HELP,
        widget=forms.TextInput(
            attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    offer = forms.IntegerField(widget=forms.HiddenInput)
    phone = forms.CharField(
        label="M-Pesa phone number",
        max_length=20,
        widget=forms.TextInput(
            attrs={"inputmode": "tel", "autocomplete": "tel", "placeholder": "07XX XXX XXX"}
        ),
    )

    def clean_mac(self):
        return _mac(self.cleaned_data["mac"])

    def clean_phone(self):
        phone = normalise(self.cleaned_data["phone"])
        if phone is None:
            raise forms.ValidationError("Enter a Safaricom number, e.g. 0712 345 678.")
        return phone
