from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm

from ispops.staff import services
from ispops.staff.models import Branch, Role, User


def client_ip(request) -> str | None:
    header = settings.CLIENT_IP_HEADER
    return (header and request.META.get(header)) or request.META.get("REMOTE_ADDR")


class ThrottledLoginForm(AuthenticationForm):
    """Django's login form, refusing to check passwords while a login is locked."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed attempts. Try again in %(minutes)s minute(s).",
    }
    locked = False

    def clean(self):
        username = (self.cleaned_data.get("username") or "").strip()
        ip = client_ip(self.request) if self.request else None
        wait = services.login_lock_seconds(username, ip)
        if wait:
            self.locked = True
            raise forms.ValidationError(
                self.error_messages["locked"],
                code="locked",
                params={"minutes": max(1, -(-wait // 60))},
            )
        try:
            return super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login":
                services.record_login_failure(username, ip)
            raise

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        services.clear_login_failures(user)


class StaffForm(forms.Form):
    full_name = forms.CharField(max_length=150)
    phone = forms.CharField(max_length=20, required=False)
    role = forms.ChoiceField(choices=Role.choices)
    branches = forms.ModelMultipleChoiceField(
        queryset=Branch.objects.filter(is_active=True),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave empty for access to every branch.",
    )


class InviteForm(StaffForm):
    email = forms.EmailField()
    field_order = ["email", "full_name", "role", "branches"]

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("This email already has a login here.")
        return email


class BranchForm(forms.ModelForm):
    class Meta:
        model = Branch
        fields = ["name", "code", "address", "phone", "is_active"]
