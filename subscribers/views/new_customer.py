"""A new customer in one form (issue 16): contact, plan, login, router or site and, for
a technician-free install, "activate now" with the first payment; otherwise a lead in
the pipeline. The work is subscribers.services.sign_up, one transaction."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone

from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers import services
from subscribers.forms_new_customer import NewCustomerForm

# Who may create customers (the customer form's and the pipeline's editors).
SIGNERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)


@roles(*SIGNERS)
def new_customer(request):
    form = NewCustomerForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                done = services.sign_up(form.details(), actor=request.user)
            except services.SignUpError as exc:
                # Met under the lock (another clerk was a moment faster): nothing written.
                form.add_error(exc.field or None, str(exc))
            else:
                return _done(request, done)
        status = 400
    return render(request, "subscribers/customers/new_customer.html", {"form": form}, status=status)


def _done(request, done: services.SignedUp):
    customer, account = done.customer, done.account
    if done.installation is not None:
        messages.success(request, f"{customer.name} is a lead in the pipeline.")
        return redirect("subscribers:lead", pk=done.installation.pk)
    text = f"{customer.name} ({customer.account}) is active"
    if account.expires_at and account.plan.billing == "prepaid":
        text += f", paid to {timezone.localtime(account.expires_at):%-d %b %Y %H:%M}"
    if done.payment is not None:
        receipt = done.payment.receipt_number or done.payment.reference
        text += f"; payment of KES {done.payment.amount:,.2f} recorded, receipt {receipt}"
    messages.success(request, text + ". A welcome SMS is on its way.")
    return redirect("subscribers:detail", customer.pk)


urls = [
    path("subscribers/sign-up/", new_customer, name="sign_up"),
]
