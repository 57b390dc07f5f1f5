"""The portal's pages: sign-in (code or password), account choice, home, password,
sign-out. Plain forms that work without JavaScript; every decision is in
portal.services and portal.sessions."""

from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.models import BillingSettings
from ispops.staff.access import public, subscriber
from ispops.staff.forms import client_ip
from portal import forms, services, sessions
from portal.models import PortalEvent
from portal.pages import customer_page, render_page
from portal.services import Outcome

LIMIT_TEXT = {
    Outcome.PHONE_LIMIT: "Too many codes for this number today. Sign in with your "
    "password, or try again tomorrow.",
    Outcome.IP_LIMIT: "Too many sign-in attempts from this network today. Try again later.",
    Outcome.LOCKED: "Too many wrong passwords. Wait a few minutes, or sign in with a code.",
}


def _page(request, template: str, context: dict, status: int = 200):
    return render_page(request, template, context, status=status)


@public
def home(request):
    """/my/: the home page once signed in, else the sign-in page; a POST asks for a
    code."""
    if request.method == "POST":
        return _request_code(request)
    visit = sessions.visit(request)
    if visit is None:
        if sessions.phone(request):
            return redirect("portal:choose")
        return _page(
            request,
            "portal/sign_in.html",
            {"form": forms.PhoneForm(), "password_form": forms.PasswordSignInForm()},
        )
    request.visit = visit
    summary = services.home(visit.customer, timezone.now())
    several = bool(visit.phone) and services.customers_for_phone(visit.phone).count() > 1
    return _page(request, "portal/home.html", {"home": summary, "switch": several})


def _request_code(request):
    form = forms.PhoneForm(request.POST)
    if form.is_valid():
        phone = form.cleaned_data["phone"]
        result = services.request_code(phone, ip=client_ip(request), now=timezone.now())
        if result.outcome in (Outcome.SENT, Outcome.WAIT):
            request.session[sessions.PENDING_KEY] = phone
            if result.outcome == Outcome.SENT:
                messages.info(
                    request, "If this number is registered with us, a code is on its way by SMS."
                )
            else:
                messages.info(
                    request,
                    f"A code was sent moments ago. You can ask for another "
                    f"in {result.wait_seconds} seconds.",
                )
            return redirect("portal:code")
        form.add_error(None, LIMIT_TEXT[result.outcome])
        status = 429
    else:
        status = 400
    context = {"form": form, "password_form": forms.PasswordSignInForm()}
    return _page(request, "portal/sign_in.html", context, status=status)


@public
def code(request):
    phone = request.session.get(sessions.PENDING_KEY)
    if not isinstance(phone, str):
        return redirect("portal:home")
    form = forms.CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = services.verify_code(phone, form.cleaned_data["code"], now=timezone.now())
        if result.outcome == Outcome.SIGNED_IN:
            return _signed_in(request, result.login.phone, PortalEvent.Kind.SIGNED_IN_CODE)
        if result.outcome == Outcome.WRONG:
            form.add_error("code", f"That code is not right. {result.tries_left} tries left.")
        else:
            form.add_error("code", "This code no longer works. Ask for a new one.")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "phone": phone, "masked": _mask(phone)}
    return _page(request, "portal/code.html", context, status=status)


@public
def password_sign_in(request):
    form = forms.PasswordSignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = services.password_sign_in(
            form.cleaned_data["phone"],
            form.cleaned_data["password"],
            ip=client_ip(request),
            now=timezone.now(),
        )
        if result.outcome == Outcome.SIGNED_IN:
            return _signed_in(request, result.login.phone, PortalEvent.Kind.SIGNED_IN_PASSWORD)
        form.add_error(None, LIMIT_TEXT.get(result.outcome, "Phone number or password is wrong."))
    status = 400 if request.method == "POST" else 200
    return _page(request, "portal/password_sign_in.html", {"form": form}, status=status)


def _signed_in(request, phone: str, kind):
    customers = sessions.sign_in(request, phone)
    only = customers[0] if len(customers) == 1 else None
    services.record_event(kind, phone=phone, customer=only, ip=client_ip(request))
    return redirect("portal:home" if len(customers) == 1 else "portal:choose")


@subscriber
def choose(request):
    if not sessions.phone(request):
        return redirect("portal:home")  # staff viewing as a customer have nothing to choose
    if request.method == "POST":
        if sessions.choose(request, request.POST.get("customer")):
            return redirect("portal:home")
        messages.error(request, "Choose one of your accounts.")
    customers = services.customers_for_phone(sessions.phone(request))
    return _page(request, "portal/choose.html", {"customers": customers})


@customer_page
def set_password(request):
    form = forms.SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login = services.login_for(request.visit.phone)
        services.set_password(login, form.cleaned_data["password1"])
        services.record_event(
            PortalEvent.Kind.PASSWORD_SET,
            phone=request.visit.phone,
            customer=request.visit.customer,
            ip=client_ip(request),
        )
        messages.success(request, "Your password is set. Next time, sign in with it.")
        return redirect("portal:home")
    status = 400 if request.method == "POST" else 200
    return _page(request, "portal/set_password.html", {"form": form}, status=status)


@require_POST
@subscriber
def sign_out(request):
    """Sign out; for staff viewing as a customer, leave the view (their staff login
    stays) and go back to the customer's 360 page."""
    visit = sessions.visit(request)
    sessions.sign_out(request)
    if visit and visit.read_only:
        return redirect("subscribers:detail", visit.customer.pk)
    if visit:
        services.record_event(
            PortalEvent.Kind.SIGNED_OUT,
            phone=visit.phone,
            customer=visit.customer,
            ip=client_ip(request),
        )
    return redirect("portal:home")


@public
def logo(request):
    """The ISP's logo for the portal's header. Served as a download-safe image: an SVG
    logo gets a CSP that forbids scripts should anyone open it directly."""
    cfg = BillingSettings.load()
    if not cfg.logo or not default_storage.exists(cfg.logo.name):
        raise Http404
    response = FileResponse(default_storage.open(cfg.logo.name, "rb"))
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "public, max-age=3600"
    return response


def _mask(phone: str) -> str:
    """2547XXXXX678 -> 07•• ••• 678: enough to recognise, not to harvest."""
    return f"0{phone[3]}•• ••• {phone[-3:]}" if len(phone) == 12 else phone
