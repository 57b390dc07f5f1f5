"""Hotspot staff pages: packages, voucher batches and their cards (print, CSV, revoke,
sell, SMS). Voucher agents open the same batch pages for their own batches only (a
batch of another agent is a 404); their own page and the agents' ledgers are in
hotspot.views_agents.

Owners and admins manage packages; owners, admins and finance print batches, revoke
them and run the agents' ledgers; support sees and sells cards over the counter.
"""

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from hotspot import agents, cards, vouchers
from hotspot.forms import AssignForm, BatchForm, CardFilterForm, PackageForm, SellForm, SmsForm
from hotspot.models import Package, Voucher, VoucherBatch
from ispops import audit
from ispops.lib.csvexport import row as csv_row
from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from ispops.staff.scoping import in_branches_of

VIEWERS = (Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT)
MANAGERS = (Role.OWNER, Role.ADMIN)
ISSUERS = (Role.OWNER, Role.ADMIN, Role.FINANCE)
SELLERS = (*VIEWERS, Role.AGENT)
PER_PAGE = 50
# Cards a web request renders into one PDF (WeasyPrint takes about 20 ms a card, so
# about 10 s); a bigger batch is printed in parts, or whole by make_vouchers --pdf.
PDF_MAX = 500


class Echo:
    def write(self, value):
        return value


# --- fetch and authorise ------------------------------------------------------------


def batches_for(user):
    """Batches this user may see: an agent their own; branch-limited staff those of
    their branches' sites and those for any site; other staff all."""
    batches = VoucherBatch.objects.select_related("package", "site", "agent")
    if user.role == Role.AGENT:
        return batches.filter(agent=user)
    return in_branches_of(user, batches, "site__branch")


def get_batch_for(request, pk) -> VoucherBatch:
    return get_object_or_404(batches_for(request.user), pk=pk)


def get_voucher_for(request, pk) -> Voucher:
    """A card of a batch this user may see; an agent's only while it is theirs."""
    voucher = get_object_or_404(
        Voucher.objects.select_related("batch__package"),
        pk=pk,
        batch__in=batches_for(request.user),
    )
    return voucher


def get_package_for(request, pk) -> Package:
    return get_object_or_404(Package, pk=pk)


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


# --- packages -----------------------------------------------------------------------


@roles(*VIEWERS)
def package_list(request):
    packages = Package.objects.annotate(router_count=Count("routers")).order_by(
        "-is_active", "price", "name"
    )
    page = Paginator(packages, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "hotspot/packages.html",
        {"page": page, "can_manage": request.user.role in MANAGERS},
    )


@roles(*MANAGERS)
def package_new(request):
    return _package_form(request, Package())


@roles(*MANAGERS)
def package_edit(request, pk):
    return _package_form(request, get_package_for(request, pk))


def _package_form(request, package):
    form = PackageForm(request.POST or None, instance=package, user=request.user)
    title = "New package" if package.pk is None else f"Package {package.name}"
    return audited_form(request, form, noun="Package", title=title, back="packages")


def audited_form(request, form, *, noun: str, title: str, back: str):
    """The hotspot's create/edit page for a named thing: save a valid POST with its audit
    entry in one transaction and go back to the list `back`; else show the form."""
    if request.method == "POST" and form.is_valid():
        created = form.instance.pk is None
        with transaction.atomic():
            saved = form.save()
            audit.record(
                saved,
                "create" if created else "update",
                {name: str(form.cleaned_data.get(name)) for name in form.changed_data},
                actor=request.user,
            )
        messages.success(request, f"{noun} {saved.name} saved.")
        return redirect(f"hotspot:{back}")
    return render(request, "hotspot/form.html", {"form": form, "title": title, "back": back})


# --- batches ------------------------------------------------------------------------


@roles(*SELLERS)
def batch_list(request):
    batches = (
        batches_for(request.user)
        .annotate(
            sold=Count("vouchers", filter=Q(vouchers__state__in=["sold", "redeemed"])),
            redeemed=Count("vouchers", filter=Q(vouchers__state="redeemed")),
        )
        .order_by("-created_at", "-id")
    )
    page = Paginator(batches, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "hotspot/batches.html",
        {"page": page, "can_issue": request.user.role in ISSUERS},
    )


@roles(*ISSUERS)
def batch_new(request):
    form = BatchForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            batch = vouchers.generate_batch(
                data["package"],
                data["count"],
                data["price"],
                site=data["site"],
                agent=data["agent"],
                unsold_expire_at=data["unsold_expire_on"],
                commission_percent=data["commission_percent"],
                note=data["note"],
                actor=request.user,
            )
        except (vouchers.VoucherError, agents.AgentError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Batch {batch.pk}: {batch.count} cards made.")
            return redirect("hotspot:batch", batch.pk)
    return render(
        request,
        "hotspot/form.html",
        {"form": form, "title": "New voucher batch", "back": "batches", "submit": "Make cards"},
    )


@roles(*SELLERS)
def batch_detail(request, pk):
    batch = get_batch_for(request, pk)
    form = CardFilterForm(request.GET or None)
    cards_qs = Voucher.objects.filter(batch=batch)
    if form.is_valid():
        if form.cleaned_data["state"]:
            cards_qs = cards_qs.filter(state=form.cleaned_data["state"])
        if code := vouchers.normalise_code(form.cleaned_data["q"]):
            cards_qs = cards_qs.filter(code__contains=code)
    page = Paginator(cards_qs.order_by("id"), PER_PAGE).get_page(request.GET.get("page"))
    role = request.user.role
    context = {
        "batch": batch,
        "counts": vouchers.state_counts(batch),
        "form": form,
        "page": page,
        "can_issue": role in ISSUERS,
        "is_agent": role == Role.AGENT,
        "assign_form": AssignForm(user=request.user) if role in ISSUERS else None,
        "pdf_parts": _pdf_parts(batch),
        "commission": agents.commission_on(batch),
    }
    return render_partial(request, "hotspot/batch.html", "cards", context)


def _pdf_parts(batch) -> list[tuple[int, int]]:
    """(first, last) card numbers of each printable part, PDF_MAX cards each."""
    return [(i + 1, min(i + PDF_MAX, batch.count)) for i in range(0, batch.count, PDF_MAX)]


@roles(*SELLERS)
def batch_pdf(request, pk):
    batch = get_batch_for(request, pk)
    layout = request.GET.get("layout", "a4")
    if layout not in cards.LAYOUTS:
        raise Http404
    try:
        part = max(1, int(request.GET.get("part", "1")))
    except ValueError:
        raise Http404 from None
    chosen = list(
        Voucher.objects.filter(batch=batch).order_by("id")[(part - 1) * PDF_MAX : part * PDF_MAX]
    )
    if not chosen:
        raise Http404
    pdf = cards.cards_pdf(batch, layout, chosen)
    response = HttpResponse(pdf, content_type="application/pdf")
    name = f"vouchers-{batch.pk}-{layout}" + (f"-part{part}" if batch.count > PDF_MAX else "")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


@roles(*SELLERS)
def batch_csv(request, pk):
    batch = get_batch_for(request, pk)
    writer = csv.writer(Echo())
    response = StreamingHttpResponse(
        (writer.writerow(csv_row(values)) for values in vouchers.csv_rows(batch)),
        content_type="text/csv",
    )
    response["Content-Disposition"] = f'attachment; filename="vouchers-{batch.pk}.csv"'
    return response


@roles(*ISSUERS)
def batch_revoke(request, pk):
    if refused := _post_only(request):
        return refused
    batch = get_batch_for(request, pk)
    try:
        revoked = vouchers.revoke_batch(batch, actor=request.user)
    except vouchers.VoucherError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Batch {batch.pk} revoked: {revoked} cards no longer work.")
    return redirect("hotspot:batch", batch.pk)


@roles(*ISSUERS)
def batch_assign(request, pk):
    if refused := _post_only(request):
        return refused
    batch = get_batch_for(request, pk)
    form = AssignForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, "Choose an agent.")
        return redirect("hotspot:batch", batch.pk)
    try:
        given = vouchers.assign_batch(batch, form.cleaned_data["agent"], actor=request.user)
    except (vouchers.VoucherError, agents.AgentError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{given} cards given to {form.cleaned_data['agent']}.")
    return redirect("hotspot:batch", batch.pk)


# --- cards --------------------------------------------------------------------------


@roles(*SELLERS)
def voucher_sell(request, pk):
    voucher = get_voucher_for(request, pk)
    form = SellForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if request.user.role == Role.AGENT and voucher.state != Voucher.State.ASSIGNED:
            form.add_error(None, "Only a card you hold can be sold.")
        else:
            try:
                vouchers.sell(
                    voucher,
                    phone=form.cleaned_data["phone"],
                    send_sms=form.cleaned_data["send_sms"],
                    actor=request.user,
                )
            except vouchers.VoucherError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Card {voucher.code} sold.")
                return redirect("hotspot:batch", voucher.batch_id)
    return render(request, "hotspot/sell.html", {"voucher": voucher, "form": form})


@roles(*SELLERS)
def voucher_sms(request, pk):
    voucher = get_voucher_for(request, pk)
    form = SmsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            vouchers.send_card_sms(voucher, form.cleaned_data["phone"], actor=request.user)
        except vouchers.VoucherError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Card {voucher.code} sent to {form.cleaned_data['phone']}.")
            return redirect("hotspot:batch", voucher.batch_id)
    return render(request, "hotspot/sms.html", {"voucher": voucher, "form": form})


@roles(*ISSUERS)
def voucher_revoke(request, pk):
    if refused := _post_only(request):
        return refused
    voucher = get_voucher_for(request, pk)
    try:
        vouchers.revoke_voucher(voucher, actor=request.user)
    except vouchers.VoucherError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Card {voucher.code} revoked.")
    return redirect("hotspot:batch", voucher.batch_id)


urls = [
    path("hotspot/packages/", package_list, name="packages"),
    path("hotspot/packages/new/", package_new, name="package_new"),
    path("hotspot/packages/<int:pk>/", package_edit, name="package"),
    path("hotspot/batches/", batch_list, name="batches"),
    path("hotspot/batches/new/", batch_new, name="batch_new"),
    path("hotspot/batches/<int:pk>/", batch_detail, name="batch"),
    path("hotspot/batches/<int:pk>/cards.pdf", batch_pdf, name="batch_pdf"),
    path("hotspot/batches/<int:pk>/cards.csv", batch_csv, name="batch_csv"),
    path("hotspot/batches/<int:pk>/revoke/", batch_revoke, name="batch_revoke"),
    path("hotspot/batches/<int:pk>/assign/", batch_assign, name="batch_assign"),
    path("hotspot/vouchers/<int:pk>/sell/", voucher_sell, name="voucher_sell"),
    path("hotspot/vouchers/<int:pk>/sms/", voucher_sms, name="voucher_sms"),
    path("hotspot/vouchers/<int:pk>/revoke/", voucher_revoke, name="voucher_revoke"),
]
