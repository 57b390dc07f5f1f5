"""Devices let through the hotspot without a login (a TV, a CCTV camera): the staff
pages (the offers sold, the devices let through per router, add one, end one early)
and the captive page's "Connect a TV or camera" (a phone on the hotspot pays by STK
push for another device's MAC). Every decision is in hotspot.bypass_sales; the binding
on the router is hotspot.entitlements' and hotspot.router's.

Owners and admins manage offers; owners, admins, finance and support see the devices
and let one through for cash; owners, admins and support may also give one free (with
a reason) and end one early. Branch-limited staff see and sell only at their routers.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from hotspot import bypass_sales, captive, entitlements
from hotspot.captive import BadDevice, CaptiveError
from hotspot.forms import BypassBuyForm, BypassForm, BypassOfferForm
from hotspot.models import Bypass, BypassOffer, BypassSale
from hotspot.views import audited_form
from hotspot.views_captive import bad_device, device_for, page
from hotspot.views_live import RouterFilter, routers_for
from ispops.staff.access import public, roles
from ispops.staff.forms import client_ip
from ispops.staff.models import Role
from payments.models import MpesaSettings

VIEWERS = (Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT)
MANAGERS = (Role.OWNER, Role.ADMIN)
SELLERS = VIEWERS
GIVERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)  # a free pass, and ending one early
PER_PAGE = 50


# --- fetch and authorise ------------------------------------------------------------------


def get_offer_for(request, pk) -> BypassOffer:
    return get_object_or_404(BypassOffer, pk=pk)


def get_bypass_for(request, pk) -> Bypass:
    """A bypass on a router this user may see; 404 otherwise."""
    return get_object_or_404(Bypass, pk=pk, router__in=routers_for(request.user))


def sale_for(request, device, public_id: str) -> BypassSale:
    """The purchase behind a waiting page, paid from this phone's session; 404 otherwise."""
    return get_object_or_404(
        BypassSale.objects.select_related("stk", "offer"),
        stk__public_id=public_id,
        router_id=device.router_id,
        ip=device.ip,
        method=BypassSale.Method.MPESA,
    )


# --- staff: offers ------------------------------------------------------------------------


@roles(*VIEWERS)
def offer_list(request):
    offers = BypassOffer.objects.annotate(router_count=Count("routers")).order_by(
        "-is_active", "price", "name"
    )
    page_ = Paginator(offers, PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page_, "can_manage": request.user.role in MANAGERS}
    return render(request, "hotspot/bypass_offers.html", context)


@roles(*MANAGERS)
def offer_new(request):
    return _offer_form(request, BypassOffer())


@roles(*MANAGERS)
def offer_edit(request, pk):
    return _offer_form(request, get_offer_for(request, pk))


def _offer_form(request, offer):
    form = BypassOfferForm(request.POST or None, instance=offer, user=request.user)
    title = "New device offer" if offer.pk is None else f"Device offer {offer.name}"
    return audited_form(request, form, noun="Offer", title=title, back="bypass_offers")


# --- staff: devices let through -----------------------------------------------------------


@roles(*VIEWERS)
def bypass_list(request):
    form = RouterFilter(request.GET or None, user=request.user)
    routers = routers_for(request.user)
    if form.is_valid() and form.cleaned_data["router"]:
        routers = routers.filter(pk=form.cleaned_data["router"].pk)
    found = Paginator(bypass_sales.bypasses(routers), PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": found,
        "now": timezone.now(),
        "can_add": request.user.role in SELLERS,
        "can_end": request.user.role in GIVERS,
    }
    return render(request, "hotspot/bypasses.html", context)


@roles(*SELLERS)
def bypass_new(request):
    may_give = request.user.role in GIVERS
    if request.method != "POST":
        initial = {"token": bypass_sales.new_token(), "router": request.GET.get("router")}
        form = BypassForm(initial=initial, user=request.user, may_give=may_give)
        return _bypass_form(request, form)
    form = BypassForm(request.POST, user=request.user, may_give=may_give)
    if not form.is_valid():
        return _bypass_form(request, form, status=400)
    data = form.cleaned_data
    try:
        sale = bypass_sales.sell(
            router=data["router"],
            mac=data["mac"],
            offer=data["offer"],
            minutes=data["minutes"],
            method=data["paid"],
            amount=data["amount"],
            note=data["note"],
            token=data["token"],
            actor=request.user,
            now=timezone.now(),
        )
    except bypass_sales.SaleError as exc:
        form.add_error(None, str(exc))
        return _bypass_form(request, form, status=400)
    messages.success(
        request,
        f"{sale.mac} is let through on {sale.router.name}; the router gets it within a minute.",
    )
    return redirect(f"{reverse('hotspot:bypasses')}?router={sale.router_id}")


def _bypass_form(request, form, status=200):
    context = {
        "form": form,
        "title": "Let a device through",
        "back": "bypasses",
        "submit": "Let it through",
    }
    return render(request, "hotspot/form.html", context, status=status)


@require_POST
@roles(*GIVERS)
def bypass_end(request, pk):
    bypass = get_bypass_for(request, pk)
    if entitlements.end_bypass(bypass, now=timezone.now(), actor=request.user):
        messages.success(request, f"{bypass.mac} is ended; the router drops it within a minute.")
    else:
        messages.info(request, f"{bypass.mac} was ended already.")
    return redirect(f"{reverse('hotspot:bypasses')}?router={bypass.router_id}")


urls = [
    path("hotspot/bypass-offers/", offer_list, name="bypass_offers"),
    path("hotspot/bypass-offers/new/", offer_new, name="bypass_offer_new"),
    path("hotspot/bypass-offers/<int:pk>/", offer_edit, name="bypass_offer"),
    path("hotspot/bypasses/", bypass_list, name="bypasses"),
    path("hotspot/bypasses/new/", bypass_new, name="bypass_new"),
    path("hotspot/bypasses/<int:pk>/end/", bypass_end, name="bypass_end"),
]


# --- the captive page: "Connect a TV or camera" -------------------------------------------


def _offers(device) -> list[tuple[BypassOffer, str]]:
    offers = bypass_sales.offers_for(captive.router_of(device))
    return [(o, bypass_sales.length_text(o.minutes)) for o in offers if o.price >= 1]


@public
def device_buy(request):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    offers = _offers(device)
    data = request.POST if request.method == "POST" else None
    chosen = request.GET.get("offer") or (offers[0][0].pk if len(offers) == 1 else "")
    form = BypassBuyForm(data, initial={"offer": chosen})
    context = {
        "device": device,
        "offers": offers,
        "form": form,
        "mpesa_ready": MpesaSettings.load().configured,
    }
    if data is None:
        return page(request, "hotspot/captive/device.html", context)
    if not context["mpesa_ready"]:
        form.add_error(None, "Nothing was sent: M-Pesa is not available here yet.")
    if not form.is_valid():
        return page(request, "hotspot/captive/device.html", context, status=400)
    offer = bypass_sales.offer_for(captive.router_of(device), form.cleaned_data["offer"])
    if offer is None or offer.price < 1:
        form.add_error(None, "Choose one of the offers sold on this Wi-Fi.")
        return page(request, "hotspot/captive/device.html", context, status=400)
    try:
        sale = bypass_sales.start_purchase(
            device,
            offer,
            form.cleaned_data["mac"],
            form.cleaned_data["phone"],
            now=timezone.now(),
            actor=f"hotspot device {client_ip(request) or ''}".strip(),
        )
    except CaptiveError as exc:
        form.add_error(None, str(exc))
        return page(request, "hotspot/captive/device.html", context, status=400)
    return redirect("captive:device_pay", sale.stk.public_id)


@public
def device_pay(request, public_id):
    try:
        device = device_for(request)
    except BadDevice as exc:
        return bad_device(request, exc)
    sale = sale_for(request, device, public_id)
    progress = bypass_sales.sale_progress(sale, timezone.now())
    context = {"device": device, "sale": sale, "progress": progress}
    template = "hotspot/captive/device_pay.html"
    if getattr(request, "htmx", False):
        template += "#status"
    return page(request, template, context)


captive_urls = [
    path("hs/device/", device_buy, name="device"),
    path("hs/device/pay/<slug:public_id>/", device_pay, name="device_pay"),
]
