"""The "I already paid" form: the M-Pesa code, and optionally the amount and the phone
paid from (left empty: the account's own numbers are tried)."""

from decimal import Decimal

from django import forms

from portal import claims, services


class AmountField(forms.DecimalField):
    """Shillings as people write them: "1500", "1,500", "KES 1,500.00"."""

    def to_python(self, value):
        if isinstance(value, str):
            text = value.upper().replace("KES", "").replace("KSH", "").replace(",", "")
            value = "".join(text.split())
        return super().to_python(value)


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
    amount = AmountField(
        label="Amount paid (KES), optional",
        required=False,
        min_value=Decimal("1"),
        max_value=Decimal("10000000"),
        decimal_places=2,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    phone = forms.CharField(
        label="Phone you paid from, optional",
        required=False,
        max_length=20,
        help_text="Leave empty if you paid from this account's number.",
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
    )

    def __init__(self, *args, signed_in_phone: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if signed_in_phone:
            self.fields["phone"].widget.attrs["placeholder"] = "0" + signed_in_phone[3:]

    def clean_code(self):
        try:
            return claims.normalise_code(self.cleaned_data["code"])
        except claims.BadCode as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_phone(self):
        raw = self.cleaned_data["phone"].strip()
        if not raw:
            return ""
        phone = services.normalise(raw)
        if phone is None:
            raise forms.ValidationError("Enter a Kenyan mobile number, e.g. 0712 345 678.")
        return phone
