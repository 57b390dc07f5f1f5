"""Billing's parts of the one settings page (ispops.staff.settings_page): company and
branding, billing, dunning, each a part of the one BillingSettings row."""

from django.db import transaction

from billing.forms import BillingSettingsForm
from billing.models import BillingSettings
from ispops import audit
from ispops.staff.settings_page import Section, add_section


class BillingPart(Section):
    """Part of BillingSettingsForm: only this part's fields are on the form, validated
    and saved (update_fields), so saving one part never touches another."""

    template = "settings/_billing.html"
    part = ""

    def __init__(self, key, title, part, *, multipart=False):
        self.key, self.title, self.part, self.multipart = key, title, part, multipart

    def fields(self) -> list[str]:
        if self.part == "BILLING":
            return [*BillingSettingsForm.BILLING, *BillingSettingsForm.PLAN_CHANGES]
        return list(getattr(BillingSettingsForm, self.part))

    def context(self, request, data=None, files=None):
        current = BillingSettings.load()
        form = BillingSettingsForm(data, files, instance=current)
        keep = self.fields()
        for name in list(form.fields):
            if name not in keep:
                del form.fields[name]
        return {"form": form, "settings": current, "fields": [form[name] for name in keep]}

    def save(self, request, context):
        form = context["form"]
        if not form.is_valid():
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            cfg = form.save(commit=False)
            # Only this part's fields: a billing run may be moving the invoice counters.
            cfg.save(update_fields=list(form.fields))
        return True


def register() -> None:
    add_section(BillingPart("company", "Company and branding", "IDENTITY", multipart=True), 10)
    add_section(BillingPart("billing", "Billing", "BILLING"), 20)
    add_section(BillingPart("dunning", "Dunning", "DUNNING"), 30)
