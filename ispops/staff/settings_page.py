"""One settings page (/settings/) with a section per area: company and branding,
billing, dunning, M-Pesa, SMS and email, tickets, account numbers, hotspot.

Each section is its own form, posted back to /settings/ with `section=<key>` and saved
on its own through the same forms and services as the area's own settings page (those
URLs, e.g. /billing/settings/, keep working). A saved section comes back to
/settings/#<key>; a refused one shows the page again with that form's errors (400).

The page only reads: every SettingsRow.load() takes the stored row (or inserts the
defaults without an audit entry), so opening it records nothing.
"""

import re

from django import forms
from django.conf import settings as django_settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.safestring import mark_safe

from ispops import audit
from ispops.staff.access import MANAGERS, roles


class Section:
    """One area's settings: `context` builds its form (bound to a post, or not) and what
    the fragment shows; `save` stores a valid post and says False when it is refused."""

    key = ""
    title = ""
    template = ""
    roles = MANAGERS
    multipart = False

    def context(self, request, data=None, files=None) -> dict:
        raise NotImplementedError

    def save(self, request, context) -> bool:
        raise NotImplementedError


# --- billing: company and branding, billing, dunning (one BillingSettings row) -------


class BillingPart(Section):
    """Part of BillingSettingsForm: only this part's fields are on the form, validated
    and saved (update_fields), so saving one part never touches another."""

    template = "settings/_billing.html"
    part = ""

    def __init__(self, key, title, part, *, multipart=False):
        self.key, self.title, self.part, self.multipart = key, title, part, multipart

    def fields(self) -> list[str]:
        from billing.forms import BillingSettingsForm

        if self.part == "BILLING":
            return [*BillingSettingsForm.BILLING, *BillingSettingsForm.PLAN_CHANGES]
        return list(getattr(BillingSettingsForm, self.part))

    def context(self, request, data=None, files=None):
        from billing.forms import BillingSettingsForm
        from billing.models import BillingSettings

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


# --- M-Pesa ----------------------------------------------------------------------------


class MpesaSection(Section):
    key, title, template = "mpesa", "M-Pesa", "settings/_mpesa.html"

    def context(self, request, data=None, files=None):
        from payments import services
        from payments.forms_mpesa import MpesaSettingsForm
        from payments.models import MpesaSettings

        cfg = MpesaSettings.load()
        form = MpesaSettingsForm(data, cfg=cfg)
        try:
            urls, urls_missing = services.callback_urls(cfg), ""
        except services.PaymentError as exc:
            urls, urls_missing = None, str(exc)
        return {
            "form": form,
            "cfg": cfg,
            "urls": urls,
            "urls_missing": urls_missing,
            "daraja_fields": _present(form, "base_url", "shortcode", "kind", "till_number"),
            "secret_fields": _present(form, "consumer_key", "consumer_secret", "passkey"),
            "callback_fields": _present(
                form, "public_url", "c2b_version", "reject_unknown_accounts", "allowed_ips"
            ),
        }

    def save(self, request, context):
        from payments import services

        form = context["form"]
        if not form.is_valid():
            return False
        try:
            services.configure(actor=request.user, **form.settings_fields())
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
            context["cfg"].refresh_from_db()  # configure() may have set fields first
            return False
        return True


def _present(form, *names) -> list:
    return [form[name] for name in names if name in form.fields]


# --- SMS and email ---------------------------------------------------------------------


class MessagingSection(Section):
    key, title, template = "messaging", "SMS and email", "settings/_messaging.html"

    def context(self, request, data=None, files=None):
        from ispops.messaging import backends
        from ispops.messaging.forms import SmsSettingsForm
        from ispops.messaging.models import SmsSettings

        current = SmsSettings.load()
        effective = current.backend or django_settings.SMS_BACKEND
        return {
            "form": SmsSettingsForm(data, instance=current),
            "settings": current,
            "key_set": bool(current.api_key),
            "sms_delivers": effective != SmsSettings.Backend.CONSOLE,
            "email_delivers": backends.email_delivers(),
        }

    def save(self, request, context):
        form = context["form"]
        if not form.is_valid():
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
        return True


# --- tickets ---------------------------------------------------------------------------


class TicketsSection(Section):
    key, title, template = "tickets", "Tickets", "settings/_tickets.html"

    def context(self, request, data=None, files=None):
        from tickets import services
        from tickets.forms import SlaTableForm, TicketSettingsForm
        from tickets.models import TicketSettings

        return {
            "form": TicketSettingsForm(data, instance=TicketSettings.load()),
            "table": SlaTableForm(data, targets=services.sla_targets()),
        }

    def save(self, request, context):
        from tickets import services

        form, table = context["form"], context["table"]
        if not (form.is_valid() and table.is_valid()):
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
            services.save_sla_targets(table.values(), actor=request.user)
        return True


# --- account numbers -------------------------------------------------------------------


class AccountsSection(Section):
    key, title, template = "accounts", "Account numbers", "settings/_accounts.html"

    def context(self, request, data=None, files=None):
        from subscribers import services
        from subscribers.models import SubscriberSettings
        from subscribers.views.settings import SettingsForm

        current = SubscriberSettings.load()
        sample = services.expand_account_pattern(current.account_pattern, current.next_account_seq)
        return {"form": SettingsForm(data, instance=current), "sample": sample}

    def save(self, request, context):
        form = context["form"]
        if not form.is_valid():
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
        return True


# --- hotspot ---------------------------------------------------------------------------


HOST_LINE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9*]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def hotspot_form_class():
    from hotspot.models import HotspotSettings, Package

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
                    f"Not a host name: {', '.join(bad[:3])}. "
                    "One host a line, e.g. help.example.com."
                )
            return "\n".join(lines)

    return HotspotSettingsForm


class HotspotSection(Section):
    key, title, template = "hotspot", "Hotspot", "settings/_hotspot.html"

    def context(self, request, data=None, files=None):
        from hotspot.models import HotspotSettings

        return {"form": hotspot_form_class()(data, instance=HotspotSettings.load())}

    def save(self, request, context):
        form = context["form"]
        if not form.is_valid():
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
        return True


SECTIONS = [
    BillingPart("company", "Company and branding", "IDENTITY", multipart=True),
    BillingPart("billing", "Billing", "BILLING"),
    BillingPart("dunning", "Dunning", "DUNNING"),
    MpesaSection(),
    MessagingSection(),
    TicketsSection(),
    AccountsSection(),
    HotspotSection(),
]
PAGE_ROLES = frozenset().union(*(s.roles for s in SECTIONS))


def sections_for(user) -> list[Section]:
    return [s for s in SECTIONS if user.role in s.roles]


@roles(*PAGE_ROLES)
def settings_page(request):
    mine = sections_for(request.user)
    bound, status = None, 200
    if request.method == "POST":
        key = request.POST.get("section", "")
        section = next((s for s in mine if s.key == key), None)
        if section is None:
            return render(
                request,
                "settings/page.html",
                {"sections": [], "error": "No such settings section."},
                status=400,
            )
        context = section.context(request, request.POST, request.FILES)
        if section.save(request, context):
            messages.success(request, f"{section.title} saved.")
            return redirect(f"{reverse('settings')}#{section.key}")
        bound, status = (section, context), 400
    rendered = []
    for section in mine:
        context = bound[1] if bound and bound[0] is section else section.context(request)
        context["section"] = section
        # Our own template's output, escaped as it was rendered.
        html = mark_safe(render_to_string(section.template, context, request=request))
        rendered.append({"section": section, "html": html})
    return render(request, "settings/page.html", {"sections": rendered}, status=status)


urls = [path("settings/", settings_page, name="settings")]
