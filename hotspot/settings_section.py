"""The hotspot section of the one settings page (ispops.staff.settings_page): voucher
codes, stacking, lockout, the free trial, data warnings and extra walled-garden hosts."""

import re

from django import forms
from django.db.models import Q

from hotspot.models import HotspotSettings, Package
from ispops.staff.settings_page import FormSection, add_section

HOST_LINE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9*]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class HotspotSettingsForm(forms.ModelForm):
    class Meta:
        model = HotspotSettings
        fields = [
            "code_length",
            "stacking",
            "wrong_codes_before_lockout",
            "lockout_minutes",
            "trial_package",
            "trial_every_days",
            "warn_at_percent",
            "walled_garden_hosts",
        ]
        labels = {"warn_at_percent": "Warn buyers at (% of a data limit)"}
        widgets = {"walled_garden_hosts": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.trial_package_id
        self.fields["trial_package"].queryset = Package.objects.filter(
            Q(is_active=True) | Q(pk=current)
        ).order_by("name")

    def clean_walled_garden_hosts(self):
        lines = [
            line.strip().lower()
            for line in self.cleaned_data["walled_garden_hosts"].splitlines()
            if line.strip()
        ]
        bad = [line for line in lines if not HOST_LINE.match(line)]
        if bad:
            raise forms.ValidationError(
                f"Not a host name: {', '.join(bad[:3])}. One host a line, e.g. help.example.com."
            )
        return "\n".join(lines)


class HotspotSection(FormSection):
    key, title, template = "hotspot", "Hotspot", "settings/_hotspot.html"

    def context(self, request, data=None, files=None):
        return {"form": HotspotSettingsForm(data, instance=HotspotSettings.load())}


def register() -> None:
    add_section(HotspotSection(), 80)
