"""The dunning page: who is about to be suspended and why, the holds in force, and
recording a promise to pay or an exemption (and ending one)."""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from billing import dunning, dunning_queue
from billing.models import DunningAction, DunningHold
from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers.models import Customer
from subscribers.services import normalise_account

VIEWERS = (Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT)
ACTORS = (Role.OWNER, Role.ADMIN, Role.FINANCE)


class HoldForm(forms.Form):
    customer = forms.CharField(label="Customer account number", max_length=20)
    kind = forms.ChoiceField(
        choices=DunningHold.Kind.choices, initial=DunningHold.Kind.PROMISE, widget=forms.RadioSelect
    )
    until = forms.DateField(
        label="Until",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="A promise: the day the customer will pay by. An exemption: blank for no end.",
    )
    note = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, customers, **kwargs):
        super().__init__(*args, **kwargs)
        self.customers = customers

    def clean_customer(self) -> Customer:
        account = normalise_account(self.cleaned_data["customer"])
        customer = self.customers.filter(account=account).first()
        if customer is None:
            raise forms.ValidationError(f"no customer with account {account}")
        return customer


def get_hold_for(request, pk) -> DunningHold:
    """A hold on a customer of this staff member's branches; else 404."""
    visible = Customer.objects.visible_to(request.user)
    return get_object_or_404(DunningHold.objects.filter(customer__in=visible), pk=pk)


@roles(*VIEWERS)
def dunning_page(request, form=None, status=200):
    today = timezone.localdate()
    visible = Customer.objects.visible_to(request.user)
    # Staff who see every branch need no filter (an IN over every customer costs).
    scope = None if request.user.branch_ids() is None else visible
    rows = dunning_queue.upcoming(today, customers=scope)
    can_act = request.user.role in ACTORS
    if can_act and form is None:
        form = HoldForm(initial={"customer": request.GET.get("customer", "")}, customers=visible)
    context = {
        "today": today,
        "page": Paginator(rows, 50).get_page(request.GET.get("page")),
        "holds": dunning.active_holds(today)
        .filter(customer__in=visible)
        .select_related("customer")
        .order_by("until", "id"),
        "actions": DunningAction.objects.filter(customer__in=visible)
        .exclude(step=DunningAction.Step.REMINDER)
        .select_related("customer", "service_account", "invoice")[:20],
        "can_act": can_act,
        "form": form if can_act else None,
    }
    return render(request, "billing/dunning/queue.html", context, status=status)


@roles(*ACTORS)
def dunning_hold(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = HoldForm(request.POST, customers=Customer.objects.visible_to(request.user))
    if form.is_valid():
        data = form.cleaned_data
        try:
            hold = dunning.add_hold(
                data["customer"], data["kind"], data["until"], data["note"], actor=request.user
            )
        except dunning.DunningError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{hold.get_kind_display()} recorded for {hold.customer}.")
            return redirect("billing:dunning")
    return dunning_page(request, form=form, status=400)


@roles(*ACTORS)
def dunning_hold_end(request, pk):
    hold = get_hold_for(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if dunning.end_hold(hold, actor=request.user):
        messages.success(request, f"{hold.get_kind_display()} for {hold.customer} ended.")
    else:
        messages.error(request, "That hold had already ended.")
    return redirect("billing:dunning")


urls = [
    path("billing/dunning/", dunning_page, name="dunning"),
    path("billing/dunning/holds/", dunning_hold, name="dunning_hold"),
    path("billing/dunning/holds/<int:pk>/end/", dunning_hold_end, name="dunning_hold_end"),
]
