"""Staff pages for payments: the list (filters, search by receipt, totals, CSV), the
unmatched queue with its one-step assign, one payment with its raw callbacks (assign,
reverse) and a payment entered by hand.

Finance, owners and admins work here; support may read the list and a payment. Staff
limited to branches see the payments of their branches' customers; an unmatched
payment has no customer yet, so only staff of every branch see it.
"""

import csv
import json
from datetime import timedelta
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.http import HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from billing.services import day_start, lock_customer
from billing.views import by_branch
from ispops.lib.csvexport import cell
from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from payments import services
from payments.forms import (
    AssignForm,
    ManualPaymentForm,
    PaymentFilterForm,
    ReverseForm,
    reference_taken,
)
from payments.models import Callback, Payment
from subscribers.models import Customer
from subscribers.views.customers import get_customer_for

MONEY_PEOPLE = (Role.OWNER, Role.ADMIN, Role.FINANCE)
READERS = (*MONEY_PEOPLE, Role.SUPPORT)
MONEY = DecimalField(max_digits=14, decimal_places=2)
ZERO = Value(0, output_field=MONEY)
PER_PAGE = 50


def _may_change(request) -> bool:
    return request.user.role in MONEY_PEOPLE


def _sentence(exc) -> str:
    """A service's reason as a sentence (capitalize() would lower a receipt number)."""
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


# --- fetch and authorise ------------------------------------------------------------


def visible_payments(user):
    """Payments this staff member may see: all for staff of every branch; else those of
    their branches' customers (which leaves out unmatched ones, which have none)."""
    if user.branch_ids() is None:
        return Payment.objects.all()
    return Payment.objects.filter(customer__in=Customer.objects.visible_to(user))


def get_payment_for(request, pk) -> Payment:
    """The payment, if this staff member may see it; else 404."""
    queryset = visible_payments(request.user).select_related(
        "customer", "ledger_entry", "stk_request"
    )
    return get_object_or_404(queryset, pk=pk)


# --- the list -----------------------------------------------------------------------------


def filtered_payments(request, form: PaymentFilterForm):
    payments = visible_payments(request.user)
    if not form.is_valid():
        return payments.none() if form.is_bound else payments
    data = form.cleaned_data
    if term := data["q"].strip():
        payments = _search(payments, term)
    if data["state"]:
        payments = payments.filter(state=data["state"])
    if data["method"]:
        payments = payments.filter(method=data["method"])
    if data["channel"] == "stk":
        payments = payments.filter(via_stk=True)
    elif data["channel"] == "c2b":
        payments = payments.filter(via_c2b=True)
    if data["received_from"]:
        payments = payments.filter(received_at__gte=day_start(data["received_from"]))
    if data["received_to"]:
        end = day_start(data["received_to"] + timedelta(days=1))
        payments = payments.filter(received_at__lt=end)
    if data["customer"]:
        payments = payments.filter(customer_id=data["customer"])
    return payments


def _search(payments, term: str):
    """A receipt or an account number typed whole (any case) finds just its payments:
    finance looking up a receipt must get that payment, not every receipt containing
    the text. Anything else is a partial search in payer names and what payers typed
    as the account."""
    exact = payments.filter(
        Q(reference__iexact=term)
        | Q(receipt_number__iexact=term)
        | Q(customer__account__iexact=term)
        | Q(account_reference__iexact=term)
    )
    if exact.exists():
        return exact
    return payments.filter(
        Q(payer_name__icontains=term)
        | Q(account_reference__icontains=term)
        | Q(customer__name__icontains=term)
    )


CHART_DAYS = 30


def daily_collections(payments, days: int = CHART_DAYS) -> dict:
    """Money received per Nairobi day over the last `days` days (reversed payments left
    out), shaped for the list's bar chart: one query."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = (
        payments.filter(received_at__gte=day_start(first))
        .exclude(state=Payment.State.REVERSED)
        .annotate(day=TruncDate("received_at", tzinfo=services.NAIROBI))
        .values("day")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    totals = {row["day"]: row["total"] for row in rows}
    peak = max(totals.values(), default=0) or 1
    width = 20
    bars = []
    for i in range(days):
        day = first + timedelta(days=i)
        amount = totals.get(day, Decimal("0"))
        height = int(120 * amount / peak)
        bars.append(
            {"x": i * width, "y": 130 - height, "height": height, "day": day, "amount": amount}
        )
    return {"bars": bars, "width": days * width, "total": sum(totals.values(), Decimal("0"))}


def payment_totals(payments) -> dict:
    """Count and sum of a set of payments, and the part still on the ledger, in one
    query (a reversed payment was received but no longer counts as paid)."""
    return payments.aggregate(
        count=Count("id"),
        total=Coalesce(Sum("amount"), ZERO),
        credited=Coalesce(Sum("amount", filter=Q(state=Payment.State.CREDITED)), ZERO),
    )


@roles(*READERS)
def payment_list(request):
    form = PaymentFilterForm(request.GET or None)
    payments = filtered_payments(request, form)
    branch_form, payments = by_branch(request, payments)
    if request.GET.get("format") == "csv":
        if not _may_change(request):
            raise PermissionDenied("the export is for finance, owners and admins")
        return _csv(payments)
    totals = payment_totals(payments)
    paginator = Paginator(
        payments.select_related("customer").order_by("-received_at", "-id"), PER_PAGE
    )
    # The aggregate has counted them already: the paginator needs no COUNT of its own.
    paginator.count = totals["count"]
    customer = None
    if form.is_valid() and form.cleaned_data["customer"]:
        customer = Customer.objects.visible_to(request.user).filter(
            pk=form.cleaned_data["customer"]
        )
        customer = customer.first()
    context = {
        "form": form,
        "branch_form": branch_form,
        "page": paginator.get_page(request.GET.get("page")),
        "totals": totals,
        "customer": customer,
        "csv_query": _query_with(request, format="csv"),
        "can_change": _may_change(request),
    }
    if not getattr(request, "htmx", False):  # the chart is not part of the htmx partial
        context["chart"] = daily_collections(visible_payments(request.user))
    return render_partial(request, "payments/list.html", "results", context)


def _query_with(request, **params) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    for key, value in params.items():
        query[key] = value
    return query.urlencode()


class _Echo:
    def write(self, value):
        return value


CSV_HEADER = [
    "id",
    "received_at",
    "paid_at",
    "method",
    "reference",
    "amount",
    "state",
    "channels",
    "customer_account",
    "customer_name",
    "account_reference",
    "payer_name",
    "msisdn",
    "matched_by",
    "recorded_by",
    "note",
    "credited_at",
    "reversed_at",
    "reversal_reason",
]


def _when(value) -> str:
    return timezone.localtime(value, services.NAIROBI).isoformat() if value else ""


def _csv(payments):
    payments = payments.select_related("customer").order_by("received_at", "id")
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_HEADER)
        for p in payments.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    p.pk,
                    _when(p.received_at),
                    _when(p.paid_at),
                    p.method,
                    cell(p.reference),
                    p.amount,
                    p.state,
                    p.channels,
                    cell(p.customer.account if p.customer else ""),
                    cell(p.customer.name if p.customer else ""),
                    cell(p.account_reference),
                    cell(p.payer_name),
                    cell(p.msisdn),
                    p.matched_by,
                    cell(p.recorded_by),
                    cell(p.note),
                    _when(p.credited_at),
                    _when(p.reversed_at),
                    cell(p.reversal_reason),
                ]
            )

    stamp = timezone.localtime(timezone.now(), services.NAIROBI).strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="payments-{stamp}.csv"'
    return response


# --- the unmatched queue --------------------------------------------------------------------


@roles(*MONEY_PEOPLE)
def unmatched(request):
    """GET: the queue, oldest first. POST: one row's account number puts that payment
    on the customer and credits it."""
    failed, status = None, 200
    if request.method == "POST":
        pk = request.POST.get("payment", "")
        payment = get_payment_for(request, int(pk) if pk.isascii() and pk.isdecimal() else 0)
        form = AssignForm(request.POST, user=request.user)
        if _assign(request, payment, form):
            return redirect("payments:unmatched")
        failed, status = (payment, form), 400
    queue = visible_payments(request.user).filter(state=Payment.State.UNMATCHED)
    page = Paginator(queue.order_by("received_at", "id"), PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = []
    for p in page:
        mine = failed is not None and failed[0].pk == p.pk
        rows.append((p, failed[1] if mine else AssignForm(user=request.user)))
    # A payment someone else credited meanwhile is no longer in the queue: its reason
    # is shown above the list instead.
    shown = failed is not None and any(p.pk == failed[0].pk for p in page)
    context = {
        "page": page,
        "rows": rows,
        "failed": None if shown else failed,
        "not_taken": _callbacks_not_taken(request.user),
    }
    return render(request, "payments/unmatched.html", context, status=status)


def _callbacks_not_taken(user, limit: int = 50) -> list:
    """Callbacks that may report money but made no payment, newest first, with their
    bodies readable. A callback names no branch, so only staff of every branch see
    them."""
    if user.branch_ids() is not None:
        return []
    found = Callback.objects.money_not_taken().order_by("-received_at", "-id")[:limit]
    return [(c, _pretty(c.body)) for c in found]


def _assign(request, payment: Payment, form: AssignForm) -> bool:
    """Credit the payment to the form's customer, or put the reason on the form."""
    if not form.is_valid():
        return False
    try:
        services.assign_payment(payment, form.customer, actor=request.user)
    except services.PaymentError as exc:
        form.add_error(None, _sentence(exc))
        return False
    messages.success(
        request,
        f"Payment {payment.reference} of KES {payment.amount:,.2f} credited to "
        f"{form.customer.name} ({form.customer.account}).",
    )
    return True


# --- one payment ------------------------------------------------------------------------


@roles(*READERS)
def payment_detail(request, pk):
    payment = get_payment_for(request, pk)
    return _render_detail(request, payment)


def _render_detail(request, payment, *, assign_form=None, reverse_form=None, status=200):
    callbacks = [(c, _pretty(c.body)) for c in payment.callbacks.order_by("received_at", "id")]
    context = {
        "payment": payment,
        "callbacks": callbacks,
        "can_change": _may_change(request),
        "assign_form": assign_form or AssignForm(user=request.user),
        "reverse_form": reverse_form or ReverseForm(),
    }
    return render(request, "payments/detail.html", context, status=status)


def _pretty(body: str) -> str:
    """The body as indented JSON when it is JSON, else as it came."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # a refused body may be anything
        return body


@roles(*MONEY_PEOPLE)
def payment_assign(request, pk):
    if refused := _post_only(request):
        return refused
    payment = get_payment_for(request, pk)
    form = AssignForm(request.POST, user=request.user)
    if _assign(request, payment, form):
        return redirect("payments:detail", payment.pk)
    return _render_detail(request, payment, assign_form=form, status=400)


@roles(*MONEY_PEOPLE)
def payment_reverse(request, pk):
    if refused := _post_only(request):
        return refused
    payment = get_payment_for(request, pk)
    form = ReverseForm(request.POST)
    if form.is_valid():
        try:
            services.reverse_payment(
                payment, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except services.PaymentError as exc:
            form.add_error(None, _sentence(exc))
        else:
            messages.success(
                request, f"Payment {payment.reference} is reversed; the customer owes it again."
            )
            return redirect("payments:detail", payment.pk)
    return _render_detail(request, payment, reverse_form=form, status=400)


# --- a payment entered by hand -------------------------------------------------------------


@roles(*MONEY_PEOPLE)
def payment_new(request):
    customer = None
    if request.GET.get("customer"):
        pk = request.GET["customer"]
        customer = get_customer_for(request, int(pk) if pk.isascii() and pk.isdecimal() else 0)
    form = ManualPaymentForm(request.POST or None, user=request.user, customer=customer)
    status = 200
    if request.method == "POST":
        if form.is_valid() and (payment := _record(request, form)):
            return redirect("payments:detail", payment.pk)
        status = 400
    context = {"form": form, "customer": customer}
    return render(request, "payments/manual.html", context, status=status)


def _record(request, form: ManualPaymentForm) -> Payment | None:
    """Record and credit the payment, or put the reason on the form. The customer row is
    locked before the reference is checked again, so two clerks entering the same slip
    at once record it once."""
    data, customer = form.cleaned_data, form.customer
    try:
        with transaction.atomic():
            lock_customer(customer.pk)
            if taken := reference_taken(customer, data["method"], data["reference"]):
                raise services.PaymentError(taken)
            payment = services.record_manual_payment(
                customer,
                method=data["method"],
                amount=data["amount"],
                reference=data["reference"],
                note=data["note"],
                actor=request.user,
            )
    except services.PaymentError as exc:
        reason = str(exc)
        form.add_error("reference" if "reference" in reason.lower() else None, reason)
        return None
    messages.success(
        request,
        f"{payment.get_method_display()} payment of KES {payment.amount:,.2f} recorded "
        f"for {customer.name}.",
    )
    return payment


urls = [
    path("payments/", payment_list, name="list"),
    path("payments/unmatched/", unmatched, name="unmatched"),
    path("payments/new/", payment_new, name="new"),
    path("payments/<int:pk>/", payment_detail, name="detail"),
    path("payments/<int:pk>/assign/", payment_assign, name="assign"),
    path("payments/<int:pk>/reverse/", payment_reverse, name="reverse"),
]
