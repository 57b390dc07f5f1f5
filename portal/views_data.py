"""The portal's data page (issue 14): each capped PPPoE account's usage this period
against its allowance, its speed now, and "Buy N GB for KES X" by M-Pesa prompt, then
the waiting page that follows the purchase to "full speed is back". Plain forms; the
waiting page refreshes itself without JavaScript, htmx only updates it in place. Every
decision is in portal.data_top_up and subscribers.top_ups; staff viewing as the
customer see the page but cannot buy (portal.pages.customer_page)."""

from django import forms
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone

from ispops.staff.forms import client_ip
from network.usage_view import usage_of
from payments.models import MpesaSettings, StkRequest
from portal import data_top_up, pay
from portal.pages import customer_page, render_page
from portal.services import normalise
from subscribers import top_ups


class BuyForm(forms.Form):
    account = forms.TypedChoiceField(coerce=int, choices=())
    phone = forms.CharField(
        label="M-Pesa phone number",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
    )

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this customer's accounts can be chosen: another's id is a form error.
        self.fields["account"].choices = [(a.pk, a.pk) for a in accounts]

    def clean_phone(self):
        phone = normalise(self.cleaned_data["phone"])
        if phone is None:
            raise forms.ValidationError("Enter a Safaricom number, e.g. 0712 345 678.")
        return phone


def _accounts(customer):
    """The customer's live PPPoE accounts with a data cap, each with its pack (or the
    reason it has none) and its usage."""
    accounts = list(
        customer.service_accounts.exclude(status="terminated")
        .filter(service="pppoe", plan__data_cap_gb__isnull=False)
        .select_related("plan")
        .order_by("id")
    )
    usage = usage_of(accounts, timezone.now())
    rows = []
    for account in accounts:
        try:
            pack = top_ups.pack_of(account)
        except top_ups.TopUpError:
            pack = None
        rows.append({"account": account, "usage": usage.get(account.pk), "pack": pack})
    return rows


@customer_page
def data_page(request):
    customer = request.visit.customer
    now = timezone.now()
    rows = _accounts(customer)
    buyable = [r["account"] for r in rows if r["pack"] is not None]
    form = BuyForm(
        request.POST or None,
        accounts=buyable,
        initial={"phone": "0" + (request.visit.phone or customer.phone)[3:]},
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            account = next(a for a in buyable if a.pk == form.cleaned_data["account"])
            try:
                sent = data_top_up.buy(
                    account,
                    phone=form.cleaned_data["phone"],
                    actor=f"portal {client_ip(request) or ''}".strip(),
                    now=now,
                )
            except pay.PayError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("portal:data_status", sent.stk.public_id)
        elif "account" in form.errors:
            form.add_error(None, "Choose one of your accounts that sells top-ups.")
    context = {
        "rows": rows,
        "form": form,
        "mpesa_ready": MpesaSettings.load().configured,
    }
    return render_page(request, "portal/data.html", context, status=status)


@customer_page
def data_status(request, public_id):
    stk = get_object_or_404(
        StkRequest.objects.select_related("customer"),
        public_id=public_id,
        customer=request.visit.customer,
        purpose=data_top_up.PURPOSE,
    )
    progress = data_top_up.progress(stk, timezone.now())
    template = "portal/data_status.html"
    if getattr(request, "htmx", False):
        template += "#status"
    return render_page(request, template, {"stk": stk, "progress": progress})


urls = [
    path("my/data/", data_page, name="data"),
    path("my/data/<slug:public_id>/", data_status, name="data_status"),
]
