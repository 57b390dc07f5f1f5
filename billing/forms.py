"""Forms of the billing pages: the invoice list's filters, voiding, a payment or an
adjustment entered by hand, and the ISP's billing settings."""

from decimal import Decimal

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import FileExtensionValidator

from billing.models import BillingSettings, Invoice, LedgerEntry

LOGO_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "svg", "webp"]
LOGO_MAX_BYTES = 1024 * 1024


class InvoiceFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Invoice number, account or name"}
        ),
    )
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Invoice.Status.choices], required=False
    )
    overdue = forms.BooleanField(label="Overdue only", required=False)
    issued_from = forms.DateField(
        label="Issued from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    issued_to = forms.DateField(
        label="Issued to", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("issued_from"), data.get("issued_to")
        if start and end and start > end:
            self.add_error("issued_to", "The end is before the start.")
        return data


class VoidForm(forms.Form):
    reason = forms.CharField(
        max_length=255, help_text="Shown on the credit note and the void invoice."
    )


class PaymentForm(forms.Form):
    class Method:
        CASH = "cash"
        BANK = "bank"
        MPESA = "mpesa-manual"

    METHODS = [
        (Method.CASH, "Cash"),
        (Method.BANK, "Bank deposit or transfer"),
        (Method.MPESA, "M-Pesa (entered by hand)"),
    ]
    DESCRIPTIONS = {
        Method.CASH: "Cash payment",
        Method.BANK: "Bank payment",
        Method.MPESA: "M-Pesa payment (entered by hand)",
    }

    action = forms.CharField(widget=forms.HiddenInput, initial="payment")
    amount = forms.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), label="Amount (KES)"
    )
    method = forms.ChoiceField(choices=METHODS)
    reference = forms.CharField(
        max_length=40,
        required=False,
        help_text="Slip or M-Pesa code (optional for cash: cash gets our own receipt "
        "number). A reference is taken once per customer.",
    )

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, prefix="payment", **kwargs)
        self.customer = customer

    def clean_reference(self):
        reference = self.cleaned_data["reference"].strip()
        if reference_used(self.customer, reference):
            raise forms.ValidationError(
                f"Reference {reference} is already on this customer's statement."
            )
        return reference

    def clean(self):
        data = super().clean()
        if data.get("method") not in (None, self.Method.CASH) and not data.get("reference"):
            self.add_error("reference", "A bank or M-Pesa payment needs its reference.")
        return data

    @property
    def description(self) -> str:
        return self.DESCRIPTIONS[self.cleaned_data["method"]]


def reference_used(customer, reference: str) -> bool:
    """Whether `reference` is on the customer's statement already, or on a payment of
    theirs (a cash slip's reference is on its payment; the statement shows our receipt
    number). No reference (cash) is never taken."""
    from payments.models import Payment

    if not reference:
        return False
    return (
        LedgerEntry.objects.filter(customer=customer, reference__iexact=reference).exists()
        or Payment.objects.filter(customer=customer, reference__iexact=reference).exists()
    )


class AdjustmentForm(forms.Form):
    KINDS = [
        (LedgerEntry.Kind.CREDIT_NOTE, "Credit note (lowers what is owed)"),
        (LedgerEntry.Kind.ADJUSTMENT, "Adjustment (signed: + raises, - lowers what is owed)"),
    ]

    action = forms.CharField(widget=forms.HiddenInput, initial="adjustment")
    kind = forms.ChoiceField(choices=KINDS)
    amount = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        label="Amount (KES)",
        help_text="A credit note's amount is positive; an adjustment's is signed.",
    )
    reason = forms.CharField(max_length=200, help_text="Shown on the customer's statement.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, prefix="adjustment", **kwargs)

    def clean(self):
        data = super().clean()
        kind, amount = data.get("kind"), data.get("amount")
        if amount is not None and kind == LedgerEntry.Kind.CREDIT_NOTE and amount <= 0:
            self.add_error("amount", "A credit note's amount is above zero.")
        if amount is not None and kind == LedgerEntry.Kind.ADJUSTMENT and amount == 0:
            self.add_error("amount", "An adjustment cannot be zero.")
        return data


class DayListField(forms.CharField):
    """'3, 1' <-> [3, 1]: whole days, each at most `maximum`, without repeats."""

    def __init__(self, *, descending: bool, maximum: int = 90, **kwargs):
        self.descending = descending
        self.maximum = maximum
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        days = set()
        for part in text.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise forms.ValidationError(f"“{part}” is not a whole number of days.")
            if int(part) > self.maximum:
                raise forms.ValidationError(f"{part} is more than {self.maximum} days.")
            days.add(int(part))
        return sorted(days, reverse=self.descending)


class BillingSettingsForm(forms.ModelForm):
    """Everything an owner or admin may set. The invoice and credit note counters are
    not here: only the numbering code moves them."""

    IDENTITY = ["legal_name", "address", "kra_pin", "paybill", "phone", "email", "logo"]
    BILLING = [
        "anchor",
        "fixed_day",
        "vat_rate",
        "vat_inclusive",
        "due_days",
        "when_suspended",
        "prepaid_partial",
        "invoice_prefix",
        "credit_note_prefix",
        "announce_invoices",
    ]
    PLAN_CHANGES = ["prepaid_upgrade", "portal_upgrade", "portal_downgrade"]
    DUNNING = [
        "reminder_days_before",
        "reminder_days_after",
        "grace_days",
        "hard_suspend_after_days",
    ]

    reminder_days_before = DayListField(
        descending=True,
        label="Reminders before the due date (days)",
        help_text="Comma-separated, e.g. 3, 1. Empty: no reminder before.",
    )
    reminder_days_after = DayListField(
        descending=False,
        label="Reminders after the due date (days)",
        help_text="Comma-separated, e.g. 1, 3. Empty: no reminder after.",
    )

    class Meta:
        model = BillingSettings
        fields = [
            "legal_name",
            "address",
            "kra_pin",
            "paybill",
            "phone",
            "email",
            "logo",
            "anchor",
            "fixed_day",
            "vat_rate",
            "vat_inclusive",
            "due_days",
            "when_suspended",
            "prepaid_partial",
            "invoice_prefix",
            "credit_note_prefix",
            "announce_invoices",
            "prepaid_upgrade",
            "portal_upgrade",
            "portal_downgrade",
            "reminder_days_before",
            "reminder_days_after",
            "grace_days",
            "hard_suspend_after_days",
        ]
        widgets = {"address": forms.Textarea(attrs={"rows": 3})}
        labels = {
            "legal_name": "Legal name",
            "vat_rate": "VAT rate (%)",
            "vat_inclusive": "Prices include VAT",
            "due_days": "Days from issue to due date",
            "when_suspended": "While an account is suspended",
            "prepaid_partial": "A prepaid part payment",
            "hard_suspend_after_days": "Hard suspension after (days)",
            "prepaid_upgrade": "A prepaid upgrade in the middle of a paid term",
            "portal_upgrade": "Upgrades subscribers make in the portal",
            "portal_downgrade": "Downgrades subscribers make in the portal",
            "announce_invoices": "Tell customers of a new invoice",
        }
        help_texts = {
            "legal_name": "On invoices and receipts; empty: the ISP's name.",
            "logo": "PNG, JPEG, GIF, SVG or WebP, at most 1 MB. Printed on invoices.",
            "fixed_day": "With a fixed day anchor: the day of the month (1 to 28).",
            "prepaid_upgrade": "Applies to staff too. Where it is refused, subscribers' "
            "upgrades wait for renewal.",
            "portal_upgrade": "At renewal: scheduled for the end of the paid period "
            "(prepaid: the term's end; postpaid: the next period). Staff still change "
            "plans at once.",
            "portal_downgrade": "At once: the unused days of the dearer plan are credited.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Left out of a post (a form saved before these existed, a script): kept.
        for name in (*self.PLAN_CHANGES, "announce_invoices"):
            self.fields[name].required = False

    def _kept(self, name):
        return self.cleaned_data.get(name) or getattr(self.instance, name)

    def clean_prepaid_upgrade(self):
        return self._kept("prepaid_upgrade")

    def clean_portal_upgrade(self):
        return self._kept("portal_upgrade")

    def clean_portal_downgrade(self):
        return self._kept("portal_downgrade")

    def clean_announce_invoices(self):
        return self._kept("announce_invoices")

    def clean_logo(self):
        logo = self.cleaned_data.get("logo")
        if isinstance(logo, UploadedFile):  # a new upload, not the file already kept
            FileExtensionValidator(LOGO_EXTENSIONS)(logo)
            if logo.size > LOGO_MAX_BYTES:
                raise forms.ValidationError("The logo is larger than 1 MB.")
        return logo

    def clean_vat_rate(self):
        rate = self.cleaned_data["vat_rate"]
        if rate < 0 or rate > 100:
            raise forms.ValidationError("A rate between 0 and 100.")
        return rate

    def clean_invoice_prefix(self):
        return self._prefix("invoice_prefix")

    def clean_credit_note_prefix(self):
        return self._prefix("credit_note_prefix")

    def _prefix(self, name):
        prefix = self.cleaned_data[name].strip().upper()
        if not prefix or not all(ch.isalnum() or ch in "-/" for ch in prefix):
            raise forms.ValidationError("Letters, digits, - and / only.")
        return prefix

    def sections(self):
        return [
            ("Identity on invoices and receipts", [self[name] for name in self.IDENTITY]),
            ("Billing", [self[name] for name in self.BILLING]),
            ("Plan changes", [self[name] for name in self.PLAN_CHANGES]),
            ("Dunning", [self[name] for name in self.DUNNING]),
        ]
