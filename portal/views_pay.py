"""The portal's Pay pages: the form (amount due, or 1-12 periods ahead for prepaid;
the phone editable) and the waiting page that follows the prompt to its end. Plain
forms and a page that refreshes itself without JavaScript; htmx only makes the waiting
page update in place. Every decision is in portal.pay."""

from django import forms
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone

from billing.models import BillingSettings
from ispops.staff.forms import client_ip
from payments.models import MpesaSettings, StkRequest
from portal import pay
from portal.pages import customer_page, render_page
from portal.services import normalise

CYCLE_WORDS = {"monthly": "month", "weekly": "week", "daily": "day", "hourly": "hour"}


class PayForm(forms.Form):
    phone = forms.CharField(
        label="M-Pesa phone number",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
    )
    terms = forms.TypedChoiceField(
        choices=[(n, n) for n in pay.TERM_CHOICES], coerce=int, required=False
    )

    def clean_phone(self):
        phone = normalise(self.cleaned_data["phone"])
        if phone is None:
            raise forms.ValidationError("Enter a Safaricom number, e.g. 0712 345 678.")
        return phone


def _period_word(customer) -> str:
    account = (
        customer.service_accounts.filter(
            plan__billing="prepaid", status__in=["active", "suspended"]
        )
        .select_related("plan")
        .first()
    )
    return CYCLE_WORDS.get(account.plan.cycle, "period") if account else "period"


@customer_page
def pay_page(request):
    customer = request.visit.customer
    now = timezone.now()
    offer = pay.offer(customer, now)
    form = PayForm(
        request.POST or None,
        initial={"phone": "0" + (request.visit.phone or customer.phone)[3:], "terms": 1},
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            amount = offer.amount_for(form.cleaned_data["terms"] or 1)
            try:
                sent = pay.send_prompt(
                    customer,
                    phone=form.cleaned_data["phone"],
                    amount=amount,
                    actor=f"portal {client_ip(request) or ''}".strip(),
                    now=now,
                )
            except pay.PayError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("portal:pay_status", sent.stk.public_id)
    pending = pay.pending_prompt(customer, now)
    context = {
        "form": form,
        "offer": offer,
        "word": _period_word(customer) if offer.prepaid else "",
        "pending": pending,
        **_fallback(customer),
    }
    return render_page(request, "portal/pay.html", context, status=status)


@customer_page
def pay_status(request, public_id):
    stk = get_object_or_404(
        StkRequest.objects.select_related("customer"),
        public_id=public_id,
        customer=request.visit.customer,
    )
    progress = pay.progress(stk, timezone.now())
    context = {"stk": stk, "progress": progress, **_fallback(request.visit.customer)}
    template = "portal/pay_status.html"
    if getattr(request, "htmx", False):
        template += "#status"
    return render_page(request, template, context)


def _fallback(customer) -> dict:
    """How to pay from the M-Pesa menu when the prompt does not work."""
    cfg = MpesaSettings.load()
    till = cfg.till_number if cfg.kind == MpesaSettings.Kind.TILL else ""
    paybill = cfg.shortcode if cfg.kind == MpesaSettings.Kind.PAYBILL else ""
    return {
        "mpesa_ready": cfg.configured,
        "till": till,
        # An ISP that has not set up Daraja may still print its paybill on its bills.
        "paybill": paybill or ("" if till else BillingSettings.load().paybill),
        "account_number": customer.account,
    }


urls = [
    path("my/pay/", pay_page, name="pay"),
    path("my/pay/<slug:public_id>/", pay_status, name="pay_status"),
]
