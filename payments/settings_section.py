"""The M-Pesa section of the one settings page (ispops.staff.settings_page)."""

from django.core.exceptions import ValidationError

from ispops.staff.settings_page import Section, add_section, present
from payments import services
from payments.forms_mpesa import MpesaSettingsForm
from payments.models import MpesaSettings


class MpesaSection(Section):
    key, title, template = "mpesa", "M-Pesa", "settings/_mpesa.html"

    def context(self, request, data=None, files=None):
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
            "daraja_fields": present(form, "base_url", "shortcode", "kind", "till_number"),
            "secret_fields": present(form, "consumer_key", "consumer_secret", "passkey"),
            "callback_fields": present(
                form, "public_url", "c2b_version", "reject_unknown_accounts", "allowed_ips"
            ),
        }

    def save(self, request, context):
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


def register() -> None:
    add_section(MpesaSection(), 40)
