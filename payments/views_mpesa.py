"""Staff pages for M-Pesa: the ISP's Daraja settings (with the callback URLs and their
registration) and STK push, a payment prompt sent to a customer's phone.

Owners and admins hold the keys; finance and support may send prompts.
"""

import math

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from billing.services import customer_balance
from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from payments import services
from payments.daraja import DarajaError
from payments.forms_mpesa import MpesaSettingsForm, StkForm
from payments.models import MpesaSettings, StkRequest
from subscribers.models import Customer
from subscribers.views.customers import get_customer_for

MANAGERS = (Role.OWNER, Role.ADMIN)
PROMPTERS = (Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT)


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


# --- settings ---------------------------------------------------------------------------


@roles(*MANAGERS)
def mpesa_settings(request):
    cfg = MpesaSettings.load()
    if request.method == "POST":
        form = MpesaSettingsForm(request.POST, cfg=cfg)
        if form.is_valid():
            try:
                services.configure(actor=request.user, **form.settings_fields())
            except ValidationError as exc:
                _add_model_errors(form, exc)
            else:
                messages.success(request, "M-Pesa settings saved.")
                return redirect("payments:settings")
        cfg.refresh_from_db()  # configure() may have set fields on it before refusing
        return _render_settings(request, cfg, form, status=400)
    return _render_settings(request, cfg, MpesaSettingsForm(cfg=cfg))


def _add_model_errors(form, exc: ValidationError) -> None:
    for name, errors in exc.message_dict.items():
        form.add_error(name if name in form.fields else None, errors)


def _render_settings(request, cfg, form, status=200):
    try:
        urls, urls_missing = services.callback_urls(cfg), ""
    except services.PaymentError as exc:
        urls, urls_missing = None, str(exc)
    context = {
        "form": form,
        "cfg": cfg,
        "urls": urls,
        "urls_missing": urls_missing,
        "secret_fields": [form[name] for name in ("consumer_key", "consumer_secret", "passkey")],
    }
    return render(request, "payments/settings.html", context, status=status)


def _back_to_settings(request):
    """Back where the button was: the one settings page's M-Pesa section, or this page."""
    if request.POST.get("back") == "settings":
        return redirect(f"{reverse('settings')}#mpesa")
    return redirect("payments:settings")


@roles(*MANAGERS)
def register_urls(request):
    if refused := _post_only(request):
        return refused
    try:
        reply = services.register_c2b_urls(actor=request.user)
    except (DarajaError, services.PaymentError) as exc:
        messages.error(request, f"The URLs were not registered: {exc}")
    else:
        said = reply.get("ResponseDescription") or "Success"
        messages.success(request, f"Safaricom accepted the C2B URLs ({said}).")
    return _back_to_settings(request)


@roles(*MANAGERS)
def issue_token(request):
    if refused := _post_only(request):
        return refused
    if request.POST.get("confirm") != "yes":
        messages.error(
            request,
            "The token was not changed: tick the box to confirm that you will register "
            "the new URLs with Safaricom.",
        )
        return _back_to_settings(request)
    services.new_token(actor=request.user)
    messages.warning(
        request,
        "A new callback token is in place and the old URLs no longer work: register the "
        "new URLs with Safaricom now.",
    )
    return _back_to_settings(request)


# --- STK push --------------------------------------------------------------------------


def visible_stk_requests(user):
    return StkRequest.objects.filter(customer__in=Customer.objects.visible_to(user))


def get_stk_for(request, pk) -> StkRequest:
    """The STK request, if its customer is in this staff member's branches; else 404."""
    return get_object_or_404(visible_stk_requests(request.user).select_related("customer"), pk=pk)


@roles(*PROMPTERS)
def stk(request):
    if request.method == "POST":
        form = StkForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                sent = services.start_stk_push(
                    form.customer,
                    phone=data["phone"],
                    amount=data["amount"],
                    actor=request.user,
                    source=StkRequest.Source.STAFF,
                )
            except services.PaymentError as exc:
                form.add_error(None, f"The prompt was not sent: {exc}")
            else:
                messages.success(
                    request,
                    f"Payment prompt for KES {sent.amount:,.0f} sent to {sent.phone} "
                    f"({form.customer.name}, {form.customer.account}). The list below "
                    "shows when it is paid.",
                )
                return redirect("payments:stk")
        return _render_stk(request, form, status=400)
    return _render_stk(request, StkForm(initial=_prefill(request), user=request.user))


def _prefill(request) -> dict:
    """?customer=<id>: their account, phone and what they owe (in whole shillings)."""
    pk = request.GET.get("customer", "")
    if not pk:
        return {}
    if not (pk.isascii() and pk.isdecimal()):
        raise Http404("no such customer")
    customer = get_customer_for(request, pk)
    initial = {"account": customer.account, "phone": customer.phone}
    owed = customer_balance(customer)
    if owed > 0:
        initial["amount"] = math.ceil(owed)
    return initial


def _render_stk(request, form, status=200):
    recent = visible_stk_requests(request.user).select_related("customer")
    context = {"form": form, "page": Paginator(recent, 25).get_page(request.GET.get("page"))}
    return render_partial(request, "payments/stk.html", "recent", context, status=status)


@roles(*PROMPTERS)
def stk_status(request, pk):
    """One request's row, which the page polls while it waits for the PIN."""
    return render(request, "payments/_stk_status.html", {"stk": get_stk_for(request, pk)})


urls = [
    path("payments/settings/", mpesa_settings, name="settings"),
    path("payments/settings/register-urls/", register_urls, name="register_urls"),
    path("payments/settings/new-token/", issue_token, name="new_token"),
    path("payments/stk/", stk, name="stk"),
    path("payments/stk/<int:pk>/status/", stk_status, name="stk_status"),
]
