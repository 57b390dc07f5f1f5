"""The subscribers list's filter, the one home of it: the list page (views.customers),
its bulk actions (subscribers.bulk_actions) and campaigns to a saved filter
(ispops.messaging.campaigns) all find their customers here."""

from django.db.models import Exists, OuterRef
from django.utils import timezone

from billing.models import Invoice
from subscribers import services
from subscribers.forms import CustomerFilterForm
from subscribers.models import Customer

# The subscribers list's filters, as its URL carries them; a campaign saves these.
LIST_FILTERS = ("q", "status", "plan", "branch", "site", "overdue")
YES = ("on", "1", "true", "yes")


def overdue_customers(customers, day=None):
    """Those of `customers` with an open invoice past its due date on `day` (today)."""
    day = day or timezone.localdate()
    late = Invoice.objects.unpaid().filter(customer_id=OuterRef("pk"), due_on__lt=day)
    return customers.filter(Exists(late))


def filter_customers(customers, data: dict, *, overdue: bool):
    """`customers` narrowed by a valid CustomerFilterForm's cleaned `data`, and to those
    overdue when asked."""
    if data["q"].strip():
        # Search results come newest first: walking the primary key backwards stops at
        # the 25th match, where sorting by name would first find every match (a broad
        # term like a common surname matches thousands).
        customers = customers.search(data["q"]).order_by("-id")
    if data["status"]:
        customers = customers.filter(status=data["status"])
    if data["branch"]:
        customers = customers.filter(branch=data["branch"])
    if data["plan"]:
        customers = customers.with_plan(data["plan"])
    if data["site"]:
        customers = customers.at_sites(services.site_subtree_ids(data["site"].pk))
    if overdue:
        customers = overdue_customers(customers)
    return customers


def wants_overdue(params) -> bool:
    return str(params.get("overdue") or "").lower() in YES


def customers_matching(user, params):
    """The customers the subscribers list shows `user` for the filter `params` (a
    QueryDict or dict of LIST_FILTERS): never one outside the user's branches. A value
    that is not one of the list's choices (another branch, a plan that is gone) raises
    SubscriberError naming it, rather than widening the set."""
    form = CustomerFilterForm(
        {key: params.get(key) or "" for key in LIST_FILTERS if key != "overdue"}, user=user
    )
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise services.SubscriberError(f"{field}: {errors[0]}")
    visible = Customer.objects.visible_to(user)
    return filter_customers(visible, form.cleaned_data, overdue=wants_overdue(params))
