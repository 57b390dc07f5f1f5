"""Bulk actions on the subscribers list: the customers ticked (or every one of the
list's filter) are suspended, moved to a plan or to a branch, or sent a message (a
campaign, ispops.messaging.campaigns).

The first POST shows what will happen ("Suspend 37 active accounts; 3 already
suspended are skipped") with one reason to type; the confirming POST writes a job
(bulk_actions.start_bulk_job) that a worker runs item by item through the one-account
services, each item claimed once, and the progress page polls it. Ids posted for
customers outside the user's branches are left out, never acted on.
"""

from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import path, reverse

from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from ispops.tasks import hand_to_worker
from subscribers import bulk_actions, listing, services
from subscribers.bulk_actions import Bulk
from subscribers.forms_bulk import BulkForm
from subscribers.models import Customer
from subscribers.tasks import run_bulk_job

STATUS_MOVERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT, Role.FINANCE)
EDITORS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
# Who may do each action (the same roles as on one customer's page).
MAY = {
    "message": STATUS_MOVERS,
    Bulk.SUSPEND: STATUS_MOVERS,
    Bulk.PLAN: STATUS_MOVERS,
    Bulk.BRANCH: EDITORS,
}
# Up to this many items run in the request; more go to a worker with a progress page.
INLINE = 20


def may_bulk(user) -> bool:
    return user.role in STATUS_MOVERS


def chosen_customers(user, data: dict):
    """(customers, left_out): the ticked customers the user may see, or every customer
    of the list's filter; left_out counts ticked ids outside the user's branches (or
    that do not exist). SubscriberError for a filter the list refuses."""
    visible = Customer.objects.visible_to(user)
    if data["all"]:
        return listing.customers_matching(user, QueryDict(data["query"] or "")), 0
    customers = visible.filter(pk__in=data["ids"])
    return customers, len(data["ids"]) - customers.count()


@roles(*STATUS_MOVERS)
def bulk_action(request):
    if request.method != "POST":
        return redirect("subscribers:list")
    form = BulkForm(request.POST, user=request.user)
    if not form.is_valid():
        return _render(request, form, None, 0, status=400)
    data = form.cleaned_data
    action = data["action"]
    if request.user.role not in MAY[action]:
        raise PermissionDenied("your role cannot do this to customers")
    try:
        customers, left_out = chosen_customers(request.user, data)
    except services.SubscriberError as exc:
        form.add_error(None, f"The list's filter cannot be used: {exc}.")
        return _render(request, form, None, 0, status=400)
    if action == "message":
        return _to_campaign(data, customers)
    plan = bulk_actions.plan_bulk(
        customers, action, plan=data["plan"] or _any_plan(), branch=data["branch"] or _any()
    )
    if not request.POST.get("confirm"):
        return _render(request, form, plan, left_out)
    reason = data["reason"].strip()
    if not reason:
        form.add_error("reason", "Say why: it is written on every account's history.")
    if form.errors:
        return _render(request, form, plan, left_out, status=400)
    job_id = bulk_actions.start_bulk_job(
        plan,
        actor=request.user,
        reason=reason,
        plan_id=data["plan"].pk if data["plan"] else None,
        branch_id=data["branch"].pk if data["branch"] else None,
    )
    if len(plan.items) <= INLINE:
        bulk_actions.run_bulk_job(job_id)
    else:
        _hand_over(job_id)
    return redirect("subscribers:bulk_job", job_id)


class _Placeholder:
    """Stands for the plan or branch not yet chosen, so the first page can still count
    what the action would touch."""

    pk = None
    name = "the one you choose"


def _any_plan():
    return _Placeholder()


def _any():
    return _Placeholder()


def _to_campaign(data, customers):
    if data["all"]:
        query = data["query"] or ""
    else:
        query = urlencode(
            {"ids": ",".join(str(pk) for pk in customers.values_list("pk", flat=True))}
        )
    return redirect(f"{reverse('messaging:campaign_new')}?{query}")


def _hand_over(job_id: str) -> None:
    hand_to_worker(run_bulk_job, job_id, what=f"bulk job {job_id}")


def _render(request, form, plan, left_out: int, status: int = 200):
    context = {
        "form": form,
        "plan": plan,
        "left_out": left_out,
        "ids": form.cleaned_data.get("ids", []) if hasattr(form, "cleaned_data") else [],
    }
    return render(request, "subscribers/customers/bulk_confirm.html", context, status=status)


@roles(*STATUS_MOVERS)
def bulk_job(request, job_id):
    job = bulk_actions.bulk_job(job_id)
    if job is None or str(job["actor_id"]) != str(request.user.pk):
        # Another user's job (or another ISP's, or an expired one) is nobody's business.
        raise Http404("no such bulk action")
    return render_partial(
        request, "subscribers/customers/bulk_job.html", "progress", {"job": job, "job_id": job_id}
    )


urls = [
    path("subscribers/bulk/", bulk_action, name="bulk"),
    path("subscribers/bulk/<str:job_id>/", bulk_job, name="bulk_job"),
]
