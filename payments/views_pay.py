"""The public pay page on the ISP's host: where the walled garden sends a suspended
subscriber. It recognises them by their address when they come through the walled
garden, else asks for the account number; it sends an STK push and then shows, live,
"enter your PIN", "paid, you are back online" or the failure in plain words."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from billing import services as billing
from ispops.lib.htmx import render_partial
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.staff.access import public
from ispops.staff.forms import client_ip
from payments import services
from payments.models import MpesaSettings, StkRequest

# A public form must not become a way to spam phones with prompts.
PUSH_WINDOW = timedelta(minutes=10)
PUSHES_PER_ACCOUNT = 5
PUSHES_PER_ADDRESS = 10


class PayForm(forms.Form):
    account = forms.CharField(label="Account number", max_length=20)
    phone = forms.CharField(label="M-Pesa phone number", max_length=20)
    amount = forms.DecimalField(
        label="Amount (KES)", min_value=Decimal("1"), max_value=Decimal("250000"), decimal_places=2
    )

    def clean_account(self):
        customer = services.find_customer(self.cleaned_data["account"])
        if customer is None:
            raise forms.ValidationError("We do not know this account number. Check your bill.")
        self.customer = customer
        return customer.account

    def clean_phone(self):
        try:
            return normalise_phone(self.cleaned_data["phone"])
        except InvalidPhone:
            raise forms.ValidationError("Enter a Safaricom number, e.g. 0712 345 678.") from None


def customer_from_walled_garden(request):
    """A suspended subscriber sent here by the walled garden comes from the address
    their router session has: that names the account without asking."""
    from network.models import ActiveSession
    from subscribers.models import ServiceAccount

    ip = client_ip(request)
    if not ip:
        return None
    session = ActiveSession.objects.filter(address=ip).first()
    if session is None:
        return None
    account = (
        ServiceAccount.objects.filter(username=session.username)
        .exclude(status="terminated")
        .select_related("customer")
        .first()
    )
    return account.customer if account else None


def _initial(customer) -> dict:
    if customer is None:
        return {}
    due = billing.to_pay(customer, timezone.now())
    return {
        "account": customer.account,
        "phone": customer.phone,
        "amount": due if due > 0 else None,
    }


def _too_many(customer, ip) -> bool:
    since = timezone.now() - PUSH_WINDOW
    recent = StkRequest.objects.filter(source=StkRequest.Source.PAY_PAGE, created_at__gte=since)
    return recent.filter(customer=customer).count() >= PUSHES_PER_ACCOUNT or (
        ip and recent.filter(started_by=f"pay page {ip}").count() >= PUSHES_PER_ADDRESS
    )


@public
def pay(request):
    cfg = MpesaSettings.load()
    known = customer_from_walled_garden(request)
    if request.method == "POST":
        form = PayForm(request.POST)
        if form.is_valid():
            ip = client_ip(request)
            if _too_many(form.customer, ip):
                form.add_error(None, "Too many payment requests. Wait a few minutes and try again.")
            else:
                try:
                    stk = services.start_stk_push(
                        form.customer,
                        phone=form.cleaned_data["phone"],
                        amount=form.cleaned_data["amount"],
                        actor=f"pay page {ip}",
                        source=StkRequest.Source.PAY_PAGE,
                    )
                except services.PaymentError as exc:
                    form.add_error(None, f"M-Pesa could not send the request: {exc}")
                else:
                    return redirect("payments:pay_status", stk.public_id)
        status = 400
    else:
        # Phone and amount due are filled in only for the subscriber the walled garden
        # recognised: for a typed account number they would tell anyone both.
        initial = _initial(known) if known else {"account": request.GET.get("account", "")}
        form = PayForm(initial=initial)
        status = 200
    context = {"form": form, "known": known, "cfg": cfg, "mpesa_ready": cfg.configured}
    return render(request, "payments/pay/pay.html", context, status=status)


@public
def pay_status(request, public_id):
    stk = get_object_or_404(StkRequest.objects.select_related("customer"), public_id=public_id)
    if stk.source != StkRequest.Source.PAY_PAGE:
        raise Http404
    state = services.pay_status(stk)
    context = {"stk": stk, "status": state, "final": state.state in ("online", "failed")}
    return render_partial(request, "payments/pay/status.html", "pay-status", context)


urls = [
    path("pay/", pay, name="pay"),
    # Public ids are token_urlsafe, all slug characters: anything else (a NUL, which
    # PostgreSQL refuses in a query) is a 404 before it reaches the database.
    path("pay/<slug:public_id>/", pay_status, name="pay_status"),
]
