"""The "I already paid" form: the M-Pesa code, and optionally the amount and the phone
paid from (the signed-in phone when left empty)."""

from decimal import Decimal

from django import forms

from portal import claims, services


class ClaimForm(forms.Form):
    code = forms.CharField(
        label="M-Pesa code",
        max_length=40,
        help_text="From the M-Pesa SMS, e.g. TAH5J2K991.",
        widget=forms.TextInput(
            attrs={
                "autocapitalize": "characters",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "TAH5J2K991",
            }
        ),
    )
    amount = forms.DecimalField(
        label="Amount paid (KES), optional",
        required=False,
        min_value=Decimal("1"),
        max_value=Decimal("10000000"),
        decimal_places=2,
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "any"}),
    )
    phone = forms.CharField(
        label="Phone you paid from, optional",
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
    )

    def __init__(self, *args, default_phone: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.default_phone = default_phone
        if default_phone:
            self.fields["phone"].widget.attrs["placeholder"] = "0" + default_phone[3:]
            self.fields[
                "phone"
            ].help_text = "Leave empty if you paid from the number you signed in with."

    def clean_code(self):
        try:
            return claims.normalise_code(self.cleaned_data["code"])
        except claims.BadCode as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_phone(self):
        raw = self.cleaned_data["phone"].strip()
        if not raw:
            return self.default_phone
        phone = services.normalise(raw)
        if phone is None:
            raise forms.ValidationError("Enter a Kenyan mobile number, e.g. 0712 345 678.")
        return phone
