"""The portal's plain HTML forms."""

from django import forms
from django.contrib.auth import password_validation

from portal import services


class PhoneForm(forms.Form):
    phone = forms.CharField(
        label="Phone number",
        max_length=20,
        widget=forms.TextInput(
            attrs={"inputmode": "tel", "autocomplete": "tel", "placeholder": "0712 345 678"}
        ),
    )

    def clean_phone(self):
        phone = services.normalise(self.cleaned_data["phone"])
        if phone is None:
            raise forms.ValidationError("Enter a Kenyan mobile number, e.g. 0712 345 678.")
        return phone


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from the SMS",
        max_length=12,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class PasswordSignInForm(PhoneForm):
    password = forms.CharField(label="Password", max_length=128, widget=forms.PasswordInput)


class SetPasswordForm(forms.Form):
    password1 = forms.CharField(
        label="New password",
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="The same again",
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        one, two = data.get("password1"), data.get("password2")
        if one and two and one != two:
            raise forms.ValidationError("The two passwords differ.")
        if one:
            password_validation.validate_password(one)
        return data
