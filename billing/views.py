"""Billing pages: invoices (list, detail, PDF, email, SMS, void), a customer's statement
(payments and adjustments entered by hand, receipts), billing runs, aged debt and the
ISP's billing settings.

Finance, owners and admins work here; support may read invoices and statements.
"""

import csv
import logging
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, DecimalField, F, Min, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from billing import announce, pdf, services
from billing.forms import (
    AdjustmentForm,
    BillingSettingsForm,
    InvoiceFilterForm,
    PaymentForm,
    VoidForm,
    reference_used,
)
from billing.models import BillingRun, BillingSettings, Invoice, LedgerEntry
from ispops import audit
from ispops.lib import csvexport
from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Branch, Role
from reports import export
from subscribers.models import Customer, ServiceAccount
from subscribers.views.customers import get_customer_for

log = logging.getLogger(__name__)

MONEY_PEOPLE = (Role.OWNER, Role.ADMIN, Role.FINANCE)
READERS = (*MONEY_PEOPLE, Role.SUPPORT)
MANAGERS = (Role.OWNER, Role.ADMIN)
MONEY = DecimalField(max_digits=14, decimal_places=2)
ZERO = Value(0, output_field=MONEY)
CENT = Decimal("0.01")


def _may_change(request) -> bool:
    return request.user.role in MONEY_PEOPLE


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


# --- fetch and authorise ------------------------------------------------------------


def visible_invoices(user):
    """Invoices of the customers this staff member may see. Staff of every branch get
    no customer subquery at all: the list's totals then scan invoices alone."""
    if user.branch_ids() is None:
        return Invoice.objects.all()
    return Invoice.objects.filter(customer__in=Customer.objects.visible_to(user))


def get_invoice_for(request, pk) -> Invoice:
    """The invoice, if its customer is in this staff member's branches; else 404."""
    queryset = visible_invoices(request.user).select_related(
        "customer", "service_account", "billing_run"
    )
    return get_object_or_404(queryset, pk=pk)


def get_payment_for(request, pk) -> LedgerEntry:
    """A payment on the ledger of a customer this staff member may see; else 404."""
    queryset = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.PAYMENT, customer__in=Customer.objects.visible_to(request.user)
    ).select_related("customer")
    return get_object_or_404(queryset, pk=pk)


def get_run_for(request, pk) -> BillingRun:
    """A billing run of this ISP. Runs are ISP-wide; what staff limited to some branches
    see of one is cut down by run_view()."""
    return get_object_or_404(BillingRun, pk=pk)


def run_view(run: BillingRun, user) -> dict:
    """The invoices, figures and errors of a run that this staff member may see: all of
    them, or for staff limited to some branches those of their branches' customers
    (the run's own counters are ISP-wide, so their figures are summed afresh)."""
    if user.branch_ids() is None:
        return {
            "invoices": run.invoices.all(),
            "invoice_count": run.invoice_count,
            "amount": run.amount,
            "errors": run.errors,
            "limited": False,
        }
    invoices = visible_invoices(user).filter(billing_run=run)
    figures = invoices.aggregate(count=Count("id"), amount=Coalesce(Sum("total"), ZERO))
    # Errors name one service account, or a batch of ids spanning any branch: only the
    # former can be told apart, so batch errors stay with the ISP-wide staff.
    named = [e["account"] for e in run.errors if "account" in e]
    visible_accounts = set(
        ServiceAccount.objects.filter(
            id__in=named, customer__in=Customer.objects.visible_to(user)
        ).values_list("id", flat=True)
    )
    errors = [e for e in run.errors if e.get("account") in visible_accounts]
    return {
        "invoices": invoices,
        "invoice_count": figures["count"],
        "amount": figures["amount"],
        "errors": errors,
        "limited": True,
    }


# --- the branch filter of money lists -------------------------------------------------


class BranchFilterForm(forms.Form):
    """`?branch=` on a money list (invoices, payments, aged debt): one of the reader's
    branches; another branch's id, or a word, is an error on the field, never a row of
    that branch."""

    branch = forms.ModelChoiceField(
        required=False, queryset=Branch.objects.none(), empty_label="Any branch"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user)


def by_branch(request, queryset, field: str = "customer__branch"):
    """(form, queryset limited to the chosen branch). An invalid choice gives no rows,
    and the form carries the reason the page shows beside the field."""
    form = BranchFilterForm(request.GET or None, user=request.user)
    if not form.is_bound:
        return form, queryset
    if not form.is_valid():
        return form, queryset.none()
    if branch := form.cleaned_data["branch"]:
        queryset = queryset.filter(**{field: branch})
    return form, queryset


class _Echo:
    def write(self, value):
        return value


def _query_with(request, **params) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    for key, value in params.items():
        query[key] = value
    return query.urlencode()


# --- invoices -----------------------------------------------------------------------


def filtered_invoices(request, form: InvoiceFilterForm):
    invoices = visible_invoices(request.user)
    if not form.is_valid():
        return invoices.none() if form.is_bound else invoices
    data = form.cleaned_data
    if term := data["q"].strip():
        invoices = _search(invoices, term)
    if data["status"]:
        invoices = invoices.filter(status=data["status"])
    if data["overdue"]:
        invoices = invoices.filter(status=Invoice.Status.OPEN, due_on__lt=timezone.localdate())
    if data["issued_from"]:
        invoices = invoices.filter(issued_on__gte=data["issued_from"])
    if data["issued_to"]:
        invoices = invoices.filter(issued_on__lte=data["issued_to"])
    return invoices


def _search(invoices, term: str):
    """An exact invoice or account number finds just that; anything else is a search
    in invoice numbers and customers (name, phone, account...). Without the exact step,
    account 00001 would also find INV-000010 and the customer whose phone ends 000012."""
    exact = invoices.filter(Q(number__iexact=term) | Q(customer__account__iexact=term))
    if exact.exists():
        return exact
    return invoices.filter(
        Q(number__icontains=term) | Q(customer__in=Customer.objects.search(term).values("pk"))
    )


def invoice_totals(invoices) -> dict:
    """Count, total and outstanding of a set of invoices, in one query (void invoices
    owe nothing)."""
    open_only = Q(status=Invoice.Status.OPEN)
    return invoices.aggregate(
        count=Count("id"),
        invoiced=Coalesce(Sum("total", filter=~Q(status=Invoice.Status.VOID)), ZERO),
        outstanding=Coalesce(Sum(F("total") - F("amount_paid"), filter=open_only), ZERO),
    )


@roles(*READERS)
def invoice_list(request):
    form = InvoiceFilterForm(request.GET or None)
    invoices = filtered_invoices(request, form)
    branch_form, invoices = by_branch(request, invoices)
    if request.GET.get("format") == "csv":
        if not _may_change(request):
            raise PermissionDenied("the export is for finance, owners and admins")
        return _invoices_csv(invoices)
    totals = invoice_totals(invoices)
    paginator = Paginator(invoices.select_related("customer").order_by("-issued_on", "-id"), 25)
    # The aggregate has counted them already: the paginator needs no COUNT of its own.
    paginator.count = totals["count"]
    context = {
        "form": form,
        "branch_form": branch_form,
        "page": paginator.get_page(request.GET.get("page")),
        "totals": totals,
        "today": timezone.localdate(),
        "can_change": _may_change(request),
        "csv_query": _query_with(request, format="csv"),
    }
    return render_partial(request, "billing/invoices.html", "results", context)


INVOICE_CSV_HEADER = [
    "number",
    "kind",
    "status",
    "customer_account",
    "customer_name",
    "branch",
    "issued_on",
    "due_on",
    "total",
    "paid",
    "credited",
    "outstanding",
]


def _invoices_csv(invoices):
    """The invoices of the list's filters, every one (not a page), oldest first; streamed
    so a year of invoices is never held in memory."""
    invoices = invoices.select_related("customer__branch").order_by("issued_on", "id")
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(INVOICE_CSV_HEADER)
        for i in invoices.iterator(chunk_size=2000):
            customer = i.customer
            yield writer.writerow(
                [
                    csvexport.cell(i.number),
                    i.kind,
                    i.status,
                    csvexport.cell(customer.account),
                    csvexport.cell(customer.name),
                    csvexport.cell(customer.branch.name if customer.branch else ""),
                    i.issued_on.isoformat(),
                    i.due_on.isoformat() if i.due_on else "",
                    i.total,
                    i.amount_paid,
                    i.amount_credited,
                    i.outstanding,
                ]
            )

    stamp = timezone.localdate().isoformat()
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="invoices-{stamp}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response


@roles(*READERS)
def invoice_detail(request, pk):
    invoice = get_invoice_for(request, pk)
    return _render_invoice(request, invoice, VoidForm())


def _render_invoice(request, invoice, void_form, status=200):
    customer = invoice.customer
    context = {
        "invoice": invoice,
        "customer": customer,
        "lines": invoice.lines.all(),
        "entries": invoice.entries.order_by("at", "id"),
        "balance": services.customer_balance(customer),
        "today": timezone.localdate(),
        "can_change": _may_change(request),
        "void_form": void_form,
    }
    return render(request, "billing/invoice.html", context, status=status)


@roles(*READERS)
def invoice_pdf(request, pk):
    invoice = get_invoice_for(request, pk)
    response = HttpResponse(pdf.invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{_filename(invoice.number)}.pdf"'
    return response


@roles(*MONEY_PEOPLE)
def invoice_email(request, pk):
    if refused := _post_only(request):
        return refused
    invoice = get_invoice_for(request, pk)
    if not invoice.customer.email:
        messages.error(request, f"{invoice.customer.name} has no email address.")
        return redirect("billing:invoice", pk)
    transaction.on_commit(lambda: _queue_invoice_email(invoice.pk))
    messages.success(
        request, f"Invoice {invoice.number} is on its way to {invoice.customer.email}."
    )
    return redirect("billing:invoice", pk)


def _queue_invoice_email(invoice_id: int) -> None:
    from billing.tasks import email_invoice

    try:
        email_invoice.delay(invoice_id)
    except Exception as exc:
        log.warning("invoice %s email not queued (%s)", invoice_id, exc)


@roles(*MONEY_PEOPLE)
def invoice_sms(request, pk):
    if refused := _post_only(request):
        return refused
    from ispops.messaging.services import notify

    invoice = get_invoice_for(request, pk)
    sent = notify(
        invoice.customer,
        "invoice_issued",
        announce.invoice_context(invoice, BillingSettings.load()),
        channels=("sms",),
        related=f"invoice:{invoice.pk}",
    )
    if not sent:
        messages.error(request, f"{invoice.customer.name} has no phone number.")
    elif sent[0].state == sent[0].State.FAILED:
        messages.error(request, f"The SMS cannot be sent: {sent[0].error}")
    else:
        messages.success(request, f"Invoice {invoice.number} sent by SMS to {sent[0].to}.")
    return redirect("billing:invoice", pk)


@roles(*MONEY_PEOPLE)
def invoice_void(request, pk):
    if refused := _post_only(request):
        return refused
    invoice = get_invoice_for(request, pk)
    form = VoidForm(request.POST)
    if not form.is_valid():
        return _render_invoice(request, invoice, form, status=400)
    try:
        note = services.void_invoice(
            invoice, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except services.BillingError as exc:
        messages.error(request, str(exc).capitalize() + ".")
    else:
        credited = f": credit note {note.number}" if note else ""
        messages.success(request, f"Invoice {invoice.number} is void{credited}.")
    return redirect("billing:invoice", pk)


def _filename(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


# --- a customer's statement -----------------------------------------------------------


@roles(*READERS)
def statement(request, customer_pk):
    customer = get_customer_for(request, customer_pk)
    payment_form = PaymentForm(customer=customer)
    adjustment_form = AdjustmentForm()
    status = 200
    if request.method == "POST":
        if not _may_change(request):
            raise PermissionDenied("support may read statements, not change them")
        action = request.POST.get("payment-action") or request.POST.get("adjustment-action")
        if action == "payment":
            payment_form = PaymentForm(request.POST, customer=customer)
            if payment_form.is_valid() and _record_payment(request, customer, payment_form):
                return redirect("billing:statement", customer.pk)
        elif action == "adjustment":
            adjustment_form = AdjustmentForm(request.POST)
            if adjustment_form.is_valid() and _record_adjustment(
                request, customer, adjustment_form
            ):
                return redirect("billing:statement", customer.pk)
        status = 400
    rows = services.statement(customer)
    balance = rows[-1][1] if rows else services.ZERO
    # Newest first: the first page is what happened lately.
    page = Paginator(rows[::-1], 50).get_page(request.GET.get("page"))
    context = {
        "customer": customer,
        "page": page,
        "balance": balance,
        "open_invoices": customer.invoices.filter(status=Invoice.Status.OPEN).order_by(
            "due_on", "id"
        ),
        "can_change": _may_change(request),
        "payment_form": payment_form,
        "adjustment_form": adjustment_form,
    }
    return render(request, "billing/statement.html", context, status=status)


def _record_payment(request, customer, form: PaymentForm) -> bool:
    """Record the payment through the payments app (so it shows in the payments list),
    or put the reason on the form. The customer row is locked before the reference is
    checked, so two clerks entering the same slip at once record it once."""
    from payments import services as payments

    # The statement form's methods as payments.Payment methods.
    methods = {
        PaymentForm.Method.CASH: "cash",
        PaymentForm.Method.BANK: "bank",
        PaymentForm.Method.MPESA: "mpesa",
    }
    data = form.cleaned_data
    try:
        with transaction.atomic():
            services.lock_customer(customer.pk)
            if reference_used(customer, data["reference"]):
                raise payments.PaymentError(
                    f"reference {data['reference']} is already on this customer's statement"
                )
            payments.record_manual_payment(
                customer,
                method=methods[data["method"]],
                amount=data["amount"],
                reference=data["reference"],
                actor=request.user,
            )
    except payments.PaymentError as exc:
        form.add_error("reference" if "reference" in str(exc) else None, str(exc))
        return False
    messages.success(request, f"Payment of KES {data['amount']:,.2f} recorded.")
    return True


def _record_adjustment(request, customer, form: AdjustmentForm) -> bool:
    data = form.cleaned_data
    kind, amount = data["kind"], data["amount"]
    try:
        if kind == LedgerEntry.Kind.CREDIT_NOTE:
            services.issue_credit_note(customer, amount, actor=request.user, reason=data["reason"])
        else:
            with transaction.atomic():
                services.record_entry(
                    customer, kind, amount, actor=request.user, description=data["reason"]
                )
                if amount < 0:
                    # Credit pays open invoices, oldest first, and may settle the account.
                    services.allocate(customer)
                    services.restore_if_settled(customer, actor=request.user)
    except services.BillingError as exc:
        form.add_error("amount", str(exc))
        return False
    label = dict(AdjustmentForm.KINDS)[kind].split(" (")[0]
    messages.success(request, f"{label} of KES {amount:,.2f} recorded.")
    return True


@roles(*READERS)
def receipt_pdf(request, entry_pk):
    entry = get_payment_for(request, entry_pk)
    response = HttpResponse(pdf.receipt_pdf(entry), content_type="application/pdf")
    name = _filename(f"receipt-{entry.reference or entry.pk}")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


# --- billing runs ---------------------------------------------------------------------


@roles(*MONEY_PEOPLE)
def run_list(request):
    runs = BillingRun.objects.order_by("-started_at")
    limited = request.user.branch_ids() is not None
    if limited:
        # The run's counters are ISP-wide: sum this user's branches' invoices instead.
        mine = Q(invoices__in=visible_invoices(request.user))
        runs = runs.annotate(
            visible_count=Count("invoices", filter=mine),
            visible_amount=Coalesce(Sum("invoices__total", filter=mine), ZERO),
        )
    page = Paginator(runs, 25).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "today": timezone.localdate(),
        "limited": limited,
        "may_start": may_start_run(request.user),
    }
    return render(request, "billing/runs.html", context)


def may_start_run(user) -> bool:
    """A billing run bills every branch at once, so only staff of every branch start it."""
    return user.branch_ids() is None


@roles(*MONEY_PEOPLE)
def run_start(request):
    if refused := _post_only(request):
        return refused
    if not may_start_run(request.user):
        raise PermissionDenied(
            "A billing run bills every branch; ask someone with access to all branches."
        )
    day = timezone.localdate()
    label = request.user.email
    transaction.on_commit(lambda: _queue_run(day.isoformat(), label))
    messages.success(
        request, f"Billing for {day:%d %b %Y} is queued; it appears here when a worker starts it."
    )
    return redirect("billing:runs")


def _queue_run(day_iso: str, actor_label: str) -> None:
    from billing.tasks import run_billing_task

    try:
        run_billing_task.delay(day_iso, actor_label)
    except Exception as exc:
        log.warning("billing run for %s not queued (%s)", day_iso, exc)


@roles(*MONEY_PEOPLE)
def run_detail(request, pk):
    run = get_run_for(request, pk)
    view = run_view(run, request.user)
    invoices = view["invoices"].select_related("customer").order_by("id")
    context = {
        "run": run,
        "running": run.state == BillingRun.State.RUNNING,
        "page": Paginator(invoices, 25).get_page(request.GET.get("page")),
        "figures": view,
        "errors": view["errors"][:200],
    }
    return render_partial(request, "billing/run.html", "progress", context)


# --- aged debt ---------------------------------------------------------------------------

BUCKET_LABELS = {
    "current": "Not yet due",
    "1-30": "1 to 30 days late",
    "31-60": "31 to 60 days late",
    "61-90": "61 to 90 days late",
    "90+": "Over 90 days late",
}


AGED_COLUMNS = [
    ("account", "Account"),
    ("name", "Name"),
    ("phone", "Phone"),
    ("branch", "Branch"),
    ("invoices", "Open invoices"),
    ("oldest_due", "Oldest due"),
    ("days_late", "Days late"),
    *((key, label) for key, label in BUCKET_LABELS.items()),
    ("outstanding", "Outstanding"),
]


def _debtors(invoices, today):
    """Per customer owing on open invoices: what, split by age past the due date
    (the buckets of services.aged_debt), most owed first."""
    left = F("total") - F("amount_paid") - F("amount_credited")
    ages = {
        "current": Q(due_on__gte=today),
        "1-30": Q(due_on__lt=today, due_on__gte=today - timedelta(days=30)),
        "31-60": Q(due_on__lt=today - timedelta(days=30), due_on__gte=today - timedelta(days=60)),
        "61-90": Q(due_on__lt=today - timedelta(days=60), due_on__gte=today - timedelta(days=90)),
        "90+": Q(due_on__lt=today - timedelta(days=90)),
    }
    return (
        invoices.filter(kind=Invoice.Kind.INVOICE, status=Invoice.Status.OPEN)
        .values(
            "customer_id",
            "customer__name",
            "customer__account",
            "customer__phone",
            "customer__branch__name",
        )
        .annotate(
            outstanding=Sum(left),
            oldest_due=Min("due_on"),
            invoices=Count("id"),
            **{f"age_{key}": Coalesce(Sum(left, filter=q), ZERO) for key, q in ages.items()},
        )
        .filter(outstanding__gt=0)
        .order_by("-outstanding", "oldest_due", "customer_id")
    )


@roles(*MONEY_PEOPLE)
def aged_debt(request):
    today = timezone.localdate()
    limited = request.user.branch_ids() is not None
    branch_form, customers = by_branch(request, Customer.objects.visible_to(request.user), "branch")
    chosen = branch_form.is_bound
    invoices = visible_invoices(request.user)
    if chosen:
        invoices = invoices.filter(customer__in=customers)
    debtors = _debtors(invoices, today)
    if request.GET.get("format") == "csv":
        table = export.Table(f"Aged debt on {today}", AGED_COLUMNS)
        for row in debtors:
            table.rows.append(_debtor_row(row, today))
        return export.download(table, "csv", filename=f"aged-debt-{today}")
    buckets = services.aged_debt(today, customers=customers if limited or chosen else None)
    biggest = max(buckets.values()) or 1
    bars = [
        {
            "key": key,
            "label": BUCKET_LABELS[key],
            "amount": amount,
            "width": round(float(amount / biggest) * 100, 1) if amount > 0 else 0,
            "y": i * 34,
        }
        for i, (key, amount) in enumerate(buckets.items())
    ]
    context = {
        "bars": bars,
        "total": sum(buckets.values(), services.ZERO),
        "debtors": [_debtor_row(row, today) | row for row in debtors[:50]],
        "today": today,
        "chart_height": len(bars) * 34,
        "branch_form": branch_form,
        "csv_query": _query_with(request, format="csv"),
    }
    return render(request, "billing/aged_debt.html", context)


def _cents(amount) -> Decimal:
    return Decimal(amount or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def _debtor_row(row: dict, today) -> dict:
    return {
        "account": row["customer__account"],
        "name": row["customer__name"],
        "phone": row["customer__phone"],
        "branch": row["customer__branch__name"] or "",
        "invoices": row["invoices"],
        "oldest_due": row["oldest_due"],
        "days_late": max(0, (today - row["oldest_due"]).days),
        **{key: _cents(row[f"age_{key}"]) for key in BUCKET_LABELS},
        "outstanding": _cents(row["outstanding"]),
    }


# --- settings ---------------------------------------------------------------------------


@roles(*MANAGERS)
def billing_settings(request):
    current = BillingSettings.load()
    form = BillingSettingsForm(request.POST or None, request.FILES or None, instance=current)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic(), audit.acting_as(request.user):
            cfg = form.save(commit=False)
            # Only the form's fields: a billing run may be moving the invoice counters now.
            cfg.save(update_fields=list(form.Meta.fields))
        messages.success(request, "Billing settings saved.")
        return redirect("billing:settings")
    return render(request, "billing/settings.html", {"form": form, "settings": current})


urls = [
    path("invoices/", invoice_list, name="invoices"),
    path("invoices/<int:pk>/", invoice_detail, name="invoice"),
    path("invoices/<int:pk>/pdf/", invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:pk>/email/", invoice_email, name="invoice_email"),
    path("invoices/<int:pk>/sms/", invoice_sms, name="invoice_sms"),
    path("invoices/<int:pk>/void/", invoice_void, name="invoice_void"),
    path("customers/<int:customer_pk>/statement/", statement, name="statement"),
    path("receipts/<int:entry_pk>/pdf/", receipt_pdf, name="receipt_pdf"),
    path("billing/runs/", run_list, name="runs"),
    path("billing/runs/start/", run_start, name="run_start"),
    path("billing/runs/<int:pk>/", run_detail, name="run"),
    path("billing/aged-debt/", aged_debt, name="aged_debt"),
    path("billing/settings/", billing_settings, name="settings"),
]
