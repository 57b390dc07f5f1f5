from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        from billing.models import BillingSettings
        from ispops import audit

        # The counters move under a row lock with update(), never through save().
        audit.register(BillingSettings, exclude=["next_invoice_number", "next_credit_note_number"])
        from billing import settings_sections

        settings_sections.register()
