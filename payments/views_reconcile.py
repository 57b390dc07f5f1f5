"""The reconciliation page: finance uploads the paybill's M-Pesa statement (CSV from the
org portal) and sees, receipt by receipt, what reached the paybill but not ispops, what
ispops holds that the statement does not show, and amounts that differ. Money missing
from ispops can be recorded from its statement row in one click."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from ispops.staff.access import roles
from ispops.staff.models import Role
from payments import reconcile
from payments.forms_mpesa import StatementForm
from payments.models import Payment, StatementUpload

MONEY_PEOPLE = (Role.OWNER, Role.ADMIN, Role.FINANCE)
PER_PAGE = 50


def _whole_paybill(request) -> None:
    """A statement is the whole paybill's, every branch's customers on it: staff
    limited to some branches may not reconcile it."""
    if request.user.branch_ids() is not None:
        raise PermissionDenied("reconciling the paybill is for staff of every branch")


def get_upload_for(request, pk) -> StatementUpload:
    _whole_paybill(request)
    return get_object_or_404(StatementUpload, pk=pk)


@roles(*MONEY_PEOPLE)
def reconcile_page(request):
    _whole_paybill(request)
    if request.method == "POST":
        form = StatementForm(request.POST, request.FILES)
        if form.is_valid():
            upload = reconcile.save_statement(
                form.parsed, filename=form.cleaned_data["statement"].name, actor=request.user
            )
            count = len(upload.rows)
            messages.success(
                request,
                f"{upload.filename}: {count} payment{'s' if count != 1 else ''} in the statement.",
            )
            return redirect("payments:reconcile_upload", upload.pk)
        return _render(request, form, status=400)
    return _render(request, StatementForm())


@roles(*MONEY_PEOPLE)
def reconcile_upload(request, pk):
    upload = get_upload_for(request, pk)
    return _render(request, StatementForm(), upload=upload)


@roles(*MONEY_PEOPLE)
def reconcile_record(request, pk):
    """Record a receipt of the statement that ispops never heard of."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    upload = get_upload_for(request, pk)
    try:
        payment, created = reconcile.record_from_statement(
            upload, request.POST.get("receipt", ""), actor=request.user
        )
    except reconcile.RecordError as exc:
        reason = str(exc)
        messages.error(request, reason[:1].upper() + reason[1:] + ".")
        return redirect("payments:reconcile_upload", upload.pk)
    if not created:
        messages.info(
            request,
            f"{payment.reference} was already recorded ({payment.get_state_display().lower()}).",
        )
    elif payment.state == Payment.State.CREDITED:
        messages.success(
            request,
            f"{payment.reference} recorded and credited to {payment.customer.name} "
            f"({payment.customer.account}).",
        )
    else:
        messages.warning(
            request,
            f"{payment.reference} recorded, but no customer has the account "
            f"{payment.account_reference or '(none given)'}: it waits among the unmatched "
            "payments.",
        )
    return redirect("payments:reconcile_upload", upload.pk)


def _render(request, form, upload=None, status=200):
    uploads = StatementUpload.objects.defer("rows")
    context = {
        "form": form,
        "uploads": Paginator(uploads, 20).get_page(request.GET.get("page")),
        "upload": upload,
    }
    if upload is not None:
        result = reconcile.compare(upload)
        context["result"] = result
        context["missing"] = Paginator(result.missing, PER_PAGE).get_page(
            request.GET.get("missing")
        )
        context["extra"] = Paginator(result.extra, PER_PAGE).get_page(request.GET.get("extra"))
        context["mismatched"] = Paginator(result.mismatched, PER_PAGE).get_page(
            request.GET.get("mismatched")
        )
    return render(request, "payments/reconcile.html", context, status=status)


urls = [
    path("payments/reconcile/", reconcile_page, name="reconcile"),
    path("payments/reconcile/<int:pk>/", reconcile_upload, name="reconcile_upload"),
    path("payments/reconcile/<int:pk>/record/", reconcile_record, name="reconcile_record"),
]
