from django import forms

from ispops.tenancy import services


class NewIspForm(forms.Form):
    name = forms.CharField(max_length=120)
    subdomain = forms.CharField(
        max_length=48,
        help_text="Also the schema name: lowercase letters, digits and _.",
    )
    owner_email = forms.EmailField(label="Owner's email (their login)")

    def __init__(self, *args, platform_domain: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.platform_domain = platform_domain

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        subdomain = data["subdomain"].strip().lower()
        host = f"{subdomain.replace('_', '-')}.{self.platform_domain}"
        try:
            self.cleaned = services.validate_new_isp(
                schema=subdomain,
                name=data["name"],
                domain=host,
                owner_email=data["owner_email"],
            )
        except services.IspInputError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
