"""The captive portal's pages at /hs/ on the ISP's host: public (the phone has nothing
but the router's word for who it is), phone-first, plain forms that work with
JavaScript off; htmx only updates the payment's waiting page in place. Every decision
is in hotspot.captive.

The router's login.html opens /hs/ with the device's variables; they are checked
(captive.parse_device) and kept in the session for the forms that follow. A page opened
without them, or with bad ones, is a 400 that says what is missing.
"""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingSettings
from hotspot import captive, captive_phone, captive_purchase
from hotspot.captive import BadDevice, CaptiveError, Device
from hotspot.forms_captive import BuyForm, PaidForm, PhoneCodeForm, PhoneForm, VoucherForm
from hotspot.models import Entitlement, Purchase
from ispops.staff.access import public
from ispops.staff.forms import client_ip
from payments.models import MpesaSettings

DEVICE_KEY = "hotspot_device"
ENTITLEMENT_KEY = "hotspot_entitlement"


# --- helpers ---------------------------------------------------------------------------------


def device_for(request) -> Device:
    """The device this request is from: the router's variables when the query string
    carries any (checked, then kept in the session), else the session's; BadDevice
    when neither says."""
    if any(name in request.GET for name in ("r", *captive.FORWARDED)):
        device = captive.parse_device(request.GET)
        request.session[DEVICE_KEY] = device.as_dict()
        return device
    device = Device.from_dict(request.session.get(DEVICE_KEY) or {})
    if device is None:
        raise BadDevice(
            "open this page from the Wi-Fi's login page: it needs the router's reference "
            "(r), the device's mac and ip"
        )
    return device


def entitlement_for(request, device: Device) -> Entitlement | None:
    """The entitlement this session was given (a voucher, a purchase, a trial or "I
    already paid") on this device's router, not yet ended."""
    pk = request.session.get(ENTITLEMENT_KEY)
    if not isinstance(pk, int):
        return None
    return (
        Entitlement.objects.filter(pk=pk, router_id=device.router_id)
        .exclude(state=Entitlement.State.ENDED)
        .select_related("package")
        .first()
    )


def purchase_for(request, device: Device, public_id: str) -> Purchase:
    """The purchase behind a waiting page, made on this device; 404 otherwise."""
    return get_object_or_404(
        Purchase.objects.select_related("stk", "package"),
        stk__public_id=public_id,
        router_id=device.router_id,
        mac=device.mac,
    )


def page(request, template: str, context: dict | None = None, status: int = 200):
    cfg = BillingSettings.load()
    return render(request, template, {"has_logo": bool(cfg.logo), **(context or {})}, status=status)


def bad_device(request, exc: BadDevice):
    return page(request, "hotspot/captive/bad.html", {"reason": str(exc)}, status=400)


def _actor(request, what: str) -> str:
    return f"hotspot {what} {client_ip(request) or ''}".strip()


def _home_context(device: Device) -> dict:
    from hotspot.vouchers import validity_text

    router = captive.router_of(device)
    packages = captive.packages_for(router)
    return {
        "device": device,
        "mpesa_ready": MpesaSettings.load().configured,
        "packages": [(p, validity_text(p.validity_minutes)) for p in packages],
        "live": captive.device_entitlement(device),
        "trial": captive_phone.trial_package(router),
    }


def _given(request, entitlement: Entitlement):
    request.session[ENTITLEMENT_KEY] = entitlement.pk
    return redirect("captive:connect")


# --- pages ---------------------------------------------------------------------------------


@public
def home(request):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    context = {**_home_context(device), "voucher_form": VoucherForm(initial=_code(request))}
    if context["live"] is not None:  # this device's own: "Connect" logs it in again
        request.session[ENTITLEMENT_KEY] = context["live"].pk
    return page(request, "hotspot/captive/home.html", context)


def _code(request) -> dict:
    code = request.GET.get("code", "")
    return {"code": code[:40]} if isinstance(code, str) and code else {}


@public
def voucher(request):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    if request.method != "POST":
        return redirect("captive:home")
    form = VoucherForm(request.POST)
    status = 400
    if form.is_valid():
        result = captive.redeem_voucher(
            device,
            form.cleaned_data["code"],
            confirmed=form.cleaned_data["confirm"],
            now=timezone.now(),
            actor=_actor(request, "voucher"),
        )
        if result.outcome == "done":
            return _given(request, result.entitlement)
        if result.outcome == "confirm":
            context = {
                "device": device,
                "stacking": result.stacking,
                "code": form.cleaned_data["code"],
            }
            return page(request, "hotspot/captive/confirm_voucher.html", context)
        form.add_error(None, result.message)
        status = 429 if result.outcome == "locked" else 400
    context = {**_home_context(device), "voucher_form": form}
    return page(request, "hotspot/captive/home.html", context, status=status)


@public
def buy(request):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    router = captive.router_of(device)
    data = request.POST if request.method == "POST" else None
    form = BuyForm(data, initial={"package": request.GET.get("package", "")})
    package = captive.package_for(router, (data or request.GET).get("package"))
    if package is None:
        return bad_device(request, BadDevice("choose one of the packages sold on this Wi-Fi"))
    context = {"device": device, "package": package, "form": form}
    if data is None:
        return page(request, "hotspot/captive/buy.html", context)
    if not form.is_valid():
        return page(request, "hotspot/captive/buy.html", context, status=400)
    now = timezone.now()
    phone = form.cleaned_data["phone"]
    stacking = captive.stacking_for(device, package, captive.phone_login(phone), now)
    if stacking.outcome == "refuse":
        form.add_error(None, stacking.message or "Your current package is still on.")
        return page(request, "hotspot/captive/buy.html", context, status=400)
    if stacking.needs_confirmation and not form.cleaned_data["confirm"]:
        context.update(stacking=stacking, phone=phone)
        return page(request, "hotspot/captive/confirm_buy.html", context)
    try:
        purchase = captive_purchase.start_purchase(
            device, package, phone, login=stacking.login, now=now, actor=_actor(request, "buy")
        )
    except CaptiveError as exc:
        form.add_error(None, str(exc))
        return page(request, "hotspot/captive/buy.html", context, status=400)
    return redirect("captive:pay_status", purchase.stk.public_id)


@public
def pay_status(request, public_id):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    purchase = purchase_for(request, device, public_id)
    progress = captive_purchase.purchase_progress(purchase, timezone.now())
    if progress.state == "ready":
        request.session[ENTITLEMENT_KEY] = progress.entitlement.pk
        if getattr(request, "htmx", False):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("captive:connect")
            return response
        return redirect("captive:connect")
    context = {"device": device, "purchase": purchase, "progress": progress}
    template = "hotspot/captive/pay_status.html"
    if getattr(request, "htmx", False):
        template += "#status"
    return page(request, template, context)


@public
def already_paid(request):
    """Join what was bought: by the M-Pesa code from the SMS (proof enough), or by the
    phone that paid, proven by a code sent to it."""
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    if request.method != "POST":
        return page(request, "hotspot/captive/paid.html", {"form": PaidForm()})
    now = timezone.now()
    if captive.locked_out(device, now):
        form = PaidForm(request.POST)
        form.full_clean()
        form.add_error(None, "Too many tries from this device. Wait a while and try again.")
        return page(request, "hotspot/captive/paid.html", {"form": form}, status=429)
    if "code" in request.POST:
        form = PhoneCodeForm(request.POST)
        if form.is_valid():
            try:
                found = captive_phone.join_by_phone(
                    device, form.cleaned_data["phone"], form.cleaned_data["code"], now=now
                )
            except CaptiveError as exc:
                form.add_error(None, str(exc))
            else:
                return _given(request, found)
        return page(request, "hotspot/captive/paid.html", {"form": form, "asked": True}, 400)
    form = PaidForm(request.POST)
    if form.is_valid():
        typed = form.cleaned_data["paid_with"]
        phone = captive.normalise(typed)
        if phone is not None:
            refused = captive_phone.ask_paid_by_phone(device, phone, now=now)
            if refused is None:
                code_form = PhoneCodeForm(initial={"phone": phone})
                return page(
                    request, "hotspot/captive/paid.html", {"form": code_form, "asked": True}
                )
            form.add_error(None, refused)
        else:
            receipt = captive_phone.receipt_of(typed)
            found = captive_phone.paid_by(device, receipt=receipt) if receipt else None
            if found is not None:
                return _given(request, captive_phone.rebind(device, found))
            captive.count_wrong(device, now)
            form.add_error(
                None,
                "We found no package bought with that M-Pesa code on this Wi-Fi. If you "
                "paid minutes ago, wait a moment and try again.",
            )
    return page(request, "hotspot/captive/paid.html", {"form": form}, status=400)


@public
def trial(request):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    package = captive_phone.trial_package(captive.router_of(device))
    if package is None:
        return bad_device(request, BadDevice("there is no free trial on this Wi-Fi"))
    context = {"package": package, "form": PhoneForm()}
    if request.method != "POST":
        return page(request, "hotspot/captive/trial.html", context)
    now = timezone.now()
    if "code" in request.POST:
        form = PhoneCodeForm(request.POST)
        context.update(form=form, asked=True)
        if form.is_valid():
            try:
                entitlement = captive_phone.start_trial(
                    device, form.cleaned_data["phone"], form.cleaned_data["code"], now=now
                )
            except CaptiveError as exc:
                form.add_error(None, str(exc))
            else:
                return _given(request, entitlement)
        return page(request, "hotspot/captive/trial.html", context, status=400)
    form = PhoneForm(request.POST)
    context["form"] = form
    if form.is_valid():
        phone = form.cleaned_data["phone"]
        refused = captive_phone.send_trial_code(device, phone, now=now)
        if refused is None:
            context.update(form=PhoneCodeForm(initial={"phone": phone}), asked=True)
            return page(request, "hotspot/captive/trial.html", context)
        form.add_error(None, refused)
    return page(request, "hotspot/captive/trial.html", context, status=400)


@public
def connect(request):
    """Log the device in with what this session was given: first a form the browser
    posts to the router's login servlet (JavaScript submits it; without, the button
    does); else, on a POST here (no such address on the page, or the router sent the
    phone back with an error), the router over its API."""
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    entitlement = entitlement_for(request, device)
    if entitlement is None:
        return redirect("captive:home")
    entitlement = captive.login_target(entitlement)
    ready = captive.on_router(entitlement)
    context = {"device": device, "entitlement": entitlement, "ready": ready}
    if ready and request.method == "POST":
        captive.login_over_api(device, entitlement)
        context["api_login"] = True
    elif ready and device.can_post_login:
        context["login"] = captive.router_login(device, entitlement)
    return page(request, "hotspot/captive/connect.html", context)
