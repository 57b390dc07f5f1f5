"""Forms of the router pages. The password is write-only: never rendered back, and left
blank on edit it keeps the stored one."""

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from ispops.staff.models import Branch
from network import routeros
from network.models import Router, no_control_characters, no_control_characters_but_lines
from network.services import valid_host
from subscribers.forms_plans import SpeedField
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


# --- a plan's fair-usage ladder (network.views_fup) -------------------------------------

MAX_FUP_STEPS = 6


class FupLadderForm(forms.Form):
    """A plan's fair-usage ladder as up to MAX_FUP_STEPS rows: after how many GB, the
    speeds, or Block. Each row is checked here; the ladder as a whole (increasing,
    slowing, block last, first step within the cap) by network.fup.save_ladder."""

    def __init__(self, *args, plan, **kwargs):
        initial = {}
        for i, step in enumerate(plan.fup_steps.all()[:MAX_FUP_STEPS]):
            initial |= {
                f"after_{i}": step.after_gb,
                f"down_{i}": step.download_kbps,
                f"up_{i}": step.upload_kbps,
                f"block_{i}": step.blocks,
            }
        super().__init__(*args, initial=initial, **kwargs)
        for i in range(MAX_FUP_STEPS):
            self.fields[f"after_{i}"] = forms.IntegerField(
                label=f"Step {i + 1}: after (GB)",
                required=False,
                validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
            )
            self.fields[f"down_{i}"] = SpeedField(label="Download", required=False, help_text="")
            self.fields[f"up_{i}"] = SpeedField(label="Upload", required=False, help_text="")
            self.fields[f"block_{i}"] = forms.BooleanField(
                label="Block until a top-up", required=False
            )
            # The page shows the rows as a table with one heading per column.
            for name, words in (("after", "after (GB)"), ("down", "download"), ("up", "upload")):
                self.fields[f"{name}_{i}"].widget.attrs["aria-label"] = f"Step {i + 1} {words}"
            self.fields[f"block_{i}"].widget.attrs["aria-label"] = f"Step {i + 1} blocks"
        self.steps: list[tuple[int, int | None, int | None]] = []

    def rows(self):
        return [
            [self[f"{name}_{i}"] for name in ("after", "down", "up", "block")]
            for i in range(MAX_FUP_STEPS)
        ]

    def clean(self):
        data = super().clean()
        steps = []
        for i in range(MAX_FUP_STEPS):
            after, down, up = data.get(f"after_{i}"), data.get(f"down_{i}"), data.get(f"up_{i}")
            block = data.get(f"block_{i}")
            if any(f"{name}_{i}" in self.errors for name in ("after", "down", "up")):
                continue  # already told
            if after is None and not (down or up or block):
                continue  # an empty row
            if after is None:
                self.add_error(f"after_{i}", "say after how many GB this step starts")
            elif block and (down or up):
                self.add_error(f"block_{i}", "a block has no speeds: clear them or untick Block")
            elif not block and not (down and up):
                self.add_error(f"down_{i}", "give both speeds, or tick Block")
            else:
                steps.append((after, None, None) if block else (after, down, up))
        if not steps and not self.errors:
            raise forms.ValidationError(
                "add at least one step, or go back to the plan's own cap and FUP speeds"
            )
        self.steps = steps
        return data
