"""Forms of the router pages. The password is write-only: never rendered back, and left
blank on edit it keeps the stored one."""

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from ispops.staff.models import Branch
from network import routeros
from network.models import Router, no_control_characters, no_control_characters_but_lines
from network.services import valid_host
from subscribers.models import NetworkSite

PASSWORD_HELP = "Stored encrypted and never shown again."


def _password_field(help_text: str) -> forms.CharField:
    return forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
        validators=[no_control_characters],
    )


def _clean_host(host: str) -> str:
    """Shared by both forms: the address as typed, refused with the reason (a number is
    judged here; a name again at every connection, see network.routeros)."""
    host = host.strip()
    if not valid_host(host):
        raise forms.ValidationError(f"invalid host {host!r}")
    problem = routeros.host_problem(host)
    if problem:
        raise forms.ValidationError(problem)
    return host


def _limit_choices(form, user, sites) -> None:
    form.fields["branch"].queryset = Branch.objects.visible_to(user)
    form.fields["site"].queryset = sites.select_related(None).order_by("name")


class RouterNewForm(forms.Form):
    name = forms.CharField(max_length=80, validators=[no_control_characters])
    host = forms.CharField(
        max_length=255,
        help_text="Address or host name of the RouterOS API.",
        validators=[no_control_characters],
    )
    port = forms.IntegerField(
        initial=8728, min_value=1, max_value=65535, help_text="8728, or 8729 with TLS."
    )
    username = forms.CharField(
        max_length=64, label="API username", validators=[no_control_characters]
    )
    password = _password_field(PASSWORD_HELP)
    use_tls = forms.BooleanField(required=False, label="Use TLS (api-ssl)")
    branch = forms.ModelChoiceField(queryset=Branch.objects.none(), required=False)
    site = forms.ModelChoiceField(queryset=NetworkSite.objects.none(), required=False)
    notes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[no_control_characters_but_lines],
    )
    check_connection = forms.BooleanField(
        required=False,
        initial=True,
        label="Connect to the router before saving",
        help_text="A router that cannot be reached, or refuses this login, is not saved.",
    )

    def __init__(self, *args, user, sites, **kwargs):
        super().__init__(*args, **kwargs)
        _limit_choices(self, user, sites)

    def clean_host(self):
        return _clean_host(self.cleaned_data["host"])


class RouterForm(forms.ModelForm):
    """Editing a router record. A blank password keeps the one stored."""

    password = _password_field(f"{PASSWORD_HELP} Leave blank to keep the current password.")

    class Meta:
        model = Router
        fields = [
            "name",
            "host",
            "port",
            "username",
            "password",
            "use_tls",
            "branch",
            "site",
            "notes",
        ]
        labels = {"username": "API username", "use_tls": "Use TLS (api-ssl)"}
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, user, sites, **kwargs):
        super().__init__(*args, **kwargs)
        # The stored secret never travels to the browser, whatever the widget does.
        self.initial["password"] = ""
        self.fields["port"].validators += [MinValueValidator(1), MaxValueValidator(65535)]
        _limit_choices(self, user, sites)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = Router.objects.filter(name__iexact=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"a router named {name!r} already exists")
        return name

    def clean_host(self):
        return _clean_host(self.cleaned_data["host"])

    def clean_password(self):
        # Blank keeps the stored password (update_router leaves it alone).
        return self.cleaned_data.get("password") or ""
