"""The captive page's forms: a voucher code, a package and the phone to pay from, "I
already paid" and the free trial's phone and code."""

from django import forms

from hotspot.captive import normalise

PHONE_ATTRS = {"inputmode": "tel", "autocomplete": "tel", "placeholder": "07XX XXX XXX"}


def _phone(value: str) -> str:
    phone = normalise(value)
    if phone is None:
        raise forms.ValidationError("Enter a Safaricom number, e.g. 0712 345 678.")
    return phone


class VoucherForm(forms.Form):
    code = forms.CharField(
        label="Voucher code",
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class BuyForm(forms.Form):
    package = forms.IntegerField(widget=forms.HiddenInput)
    phone = forms.CharField(
        label="M-Pesa phone number", max_length=20, widget=forms.TextInput(attrs=PHONE_ATTRS)
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean_phone(self):
        return _phone(self.cleaned_data["phone"])


class PaidForm(forms.Form):
    paid_with = forms.CharField(
        label="The phone you paid from, or the M-Pesa code from the SMS",
        max_length=30,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )


class PhoneForm(forms.Form):
    phone = forms.CharField(
        label="Your phone number", max_length=20, widget=forms.TextInput(attrs=PHONE_ATTRS)
    )

    def clean_phone(self):
        return _phone(self.cleaned_data["phone"])


class PhoneCodeForm(PhoneForm):
    code = forms.CharField(
        label="The code we sent by SMS",
        max_length=12,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )
