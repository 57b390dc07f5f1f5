"""The portal's settings forms: contact details the subscriber may change, and their
notification choices (only the kinds the law lets them refuse)."""

from django import forms

from ispops.messaging import preferences
from ispops.messaging.models import Channel
from subscribers.services import SubscriberError, clean_phone


class ContactForm(forms.Form):
    email = forms.EmailField(label="Email", required=False, max_length=254)
    alt_phone = forms.CharField(
        label="Other phone number",
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
        help_text="Whoever has this phone can also sign in to this account.",
    )

    def __init__(self, *args, customer, signed_in_with: str = "", **kwargs):
        self.customer = customer
        self.signed_in_with = signed_in_with
        kwargs.setdefault(
            "initial", {"email": customer.email, "alt_phone": local_phone(customer.alt_phone)}
        )
        super().__init__(*args, **kwargs)

    def clean_alt_phone(self):
        try:
            phone = clean_phone(self.cleaned_data["alt_phone"].strip(), required=False)
        except SubscriberError as exc:
            raise forms.ValidationError(str(exc)) from None
        if phone and phone == self.customer.phone:
            raise forms.ValidationError("That is already your main number.")
        current = self.customer.alt_phone
        if current and self.signed_in_with == current and phone != current:
            # The session is proven by this phone: changing it would sign them out.
            raise forms.ValidationError(
                "You signed in with this number, so it cannot be changed now. Sign in "
                "with your main number to change it."
            )
        return phone

    def changes(self) -> dict:
        """The fields that differ from the customer's, with their new values."""
        data = self.cleaned_data
        return {
            name: data[name]
            for name in ("email", "alt_phone")
            if data[name] != getattr(self.customer, name)
        }


class PreferencesForm(forms.Form):
    """One tick box per optional kind and channel ("reminders_sms"); mandatory kinds
    have no box, and a posted name for one is ignored like any unknown field."""

    def __init__(self, *args, choices: dict, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in preferences.OPTIONAL:
            for channel, label in Channel.choices:
                self.fields[field_name(kind.key, channel)] = forms.BooleanField(
                    label=label,
                    required=False,
                    initial=choices[(kind.key, channel)],
                    # The table's headings say it to the eye; this says it to a reader.
                    widget=forms.CheckboxInput(attrs={"aria-label": f"{kind.label} by {label}"}),
                )

    def wanted(self) -> dict[tuple[str, str], bool]:
        return {
            (kind.key, channel): self.cleaned_data[field_name(kind.key, channel)]
            for kind in preferences.OPTIONAL
            for channel in Channel.values
        }

    def rows(self) -> list[dict]:
        """The optional kinds with their boxes, for the template."""
        return [
            {
                "kind": kind,
                "fields": [self[field_name(kind.key, channel)] for channel in Channel.values],
            }
            for kind in preferences.OPTIONAL
        ]


def field_name(kind: str, channel: str) -> str:
    return f"{kind}_{channel}"


def local_phone(phone: str) -> str:
    """2547XXXXXXXX -> 07XXXXXXXX, as people type it."""
    return "0" + phone[3:] if len(phone) == 12 and phone.startswith("254") else phone
