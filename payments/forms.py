"""Forms of the payments pages: the list's filters, putting an unmatched payment on a
customer, reversing a payment and a payment entered by hand."""

from decimal import Decimal

from django import forms

from billing.forms import reference_used
from payments import services
from payments.models import Payment
from subscribers.models import Customer


class PaymentFilterForm(forms.Form):
    CHANNELS = [("", "Any channel"), ("stk", "STK push"), ("c2b", "Paybill / till (C2B)")]

    q = forms.CharField(
        label="Search",
        required=False,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Receipt, account, payer name"}
        ),
    )
    state = forms.ChoiceField(choices=[("", "Any state"), *Payment.State.choices], required=False)
    method = forms.ChoiceField(
        choices=[("", "Any method"), *Payment.Method.choices], required=False
    )
    channel = forms.ChoiceField(choices=CHANNELS, required=False)
    received_from = forms.DateField(
        label="Received from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    received_to = forms.DateField(
        label="Received to", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    customer = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and start > end:
            self.add_error("received_to", "The end is before the start.")
        return data


class AssignForm(forms.Form):
    """An account number (or a service login) naming the customer to credit."""

    account = forms.CharField(
        label="Account number",
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "Account number", "autocomplete": "off"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.customer = None

    def clean_account(self):
        text = self.cleaned_data["account"].strip()
        customer = services.find_customer(text)
        # A customer outside this staff member's branches is as unknown as a typo.
        if (
            customer is None
            or not Customer.objects.visible_to(self.user).filter(pk=customer.pk).exists()
        ):
            raise forms.ValidationError(f"No customer has the account number {text}.")
        self.customer = customer
        return text


class ReverseForm(forms.Form):
    reason = forms.CharField(
        max_length=255,
        help_text="Why the money comes off the ledger (a bounced cheque, the wrong "
        "customer...). Kept on the payment and the statement.",
    )


class ManualPaymentForm(forms.Form):
    """A payment taken by hand. Without a customer given in the URL, the account
    number says whose it is."""

    account = forms.CharField(label="Account number", max_length=40)
    method = forms.ChoiceField(
        choices=[
            (Payment.Method.CASH, "Cash"),
            (Payment.Method.BANK, "Bank deposit or transfer"),
            (Payment.Method.CHEQUE, "Cheque"),
            (Payment.Method.MPESA, "M-Pesa (receipt typed in)"),
        ]
    )
    amount = forms.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), label="Amount (KES)"
    )
    reference = forms.CharField(
        max_length=40,
        required=False,
        help_text="Slip, cheque or M-Pesa receipt number (optional for cash: cash gets our "
        "own receipt number). A reference is taken once per customer; an M-Pesa receipt "
        "once at all.",
    )
    note = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, user, customer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.customer = customer
        if customer is not None:
            del self.fields["account"]

    def clean_account(self):
        form = AssignForm({"account": self.cleaned_data["account"]}, user=self.user)
        if not form.is_valid():
            raise forms.ValidationError(form.errors["account"])
        self.customer = form.customer
        return form.cleaned_data["account"]

    def clean(self):
        data = super().clean()
        method, reference = data.get("method"), (data.get("reference") or "").strip()
        taken = (
            reference_taken(self.customer, method, reference)
            if method and reference and self.customer is not None
            else ""
        )
        if taken:
            self.add_error("reference", taken)
        elif method and method != Payment.Method.CASH and not reference:
            self.add_error("reference", "Only cash may be taken without a reference.")
        return data


def reference_taken(customer, method: str, reference: str) -> str:
    """Why this reference cannot be used again, or "" if it can: an M-Pesa receipt is
    one payment at all, any other reference once on a customer's statement (in any
    case, as billing's statement form has it)."""
    if method == Payment.Method.MPESA:
        if Payment.objects.filter(method=method, reference__iexact=reference).exists():
            return f"M-Pesa receipt {reference.upper()} is already recorded."
    elif reference_used(customer, reference):
        return f"Reference {reference} is already on this customer's statement."
    return ""
