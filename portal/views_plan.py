"""My plan: the plans each service may move to, a priced preview of a move (from the
billing engine, subscribers.plan_changes), confirming it (at once, or scheduled for the
end of the paid period under the ISP's policy) and cancelling a scheduled one."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import ledger
from portal.forms_plan import ConfirmForm, sign_quote
from portal.pages import customer_page, render_page
from subscribers import plan_changes
from subscribers.models import PlanChange
from subscribers.services import SubscriberError


def get_account_for(request, pk):
    """One of the visiting customer's services in use, or 404."""
    account = plan_changes.live_accounts(request.visit.customer).filter(pk=pk).first()
    if account is None:
        raise Http404
    return account


def get_plan_for(account, pk):
    """A plan this service may move to by itself, or 404."""
    plan = plan_changes.plans_for(account).filter(pk=pk).first()
    if plan is None:
        raise Http404
    return plan


def get_scheduled_for(request, pk) -> PlanChange:
    change = (
        PlanChange.objects.filter(
            pk=pk,
            state=PlanChange.State.PENDING,
            service_account__customer=request.visit.customer,
        )
        .select_related("service_account", "plan")
        .first()
    )
    if change is None:
        raise Http404
    return change


def _actor(request) -> str:
    return f"subscriber {request.visit.phone}".strip()


@customer_page
def plan(request):
    now = timezone.now()
    accounts = list(plan_changes.live_accounts(request.visit.customer))
    pending = plan_changes.pending_for(accounts)
    refused = plan_changes.refused_for(accounts, now)
    cards = [
        {
            "account": account,
            "pending": pending.get(account.pk),
            "refused": refused.get(account.pk),
            "options": plan_changes.options(account, now),
        }
        for account in accounts
    ]
    owed = ledger.dues(request.visit.customer, timezone.localdate(now)).owed
    return render_page(request, "portal/plan.html", {"cards": cards, "owed": owed})


@customer_page
def preview(request, account, plan_id):
    """GET: what the move costs. POST: make it (the quote signed in the form)."""
    account = get_account_for(request, account)
    plan = get_plan_for(account, plan_id)
    now = timezone.now()
    status = 200
    if request.method == "POST":
        form = ConfirmForm(request.POST, account=account, plan=plan)
        if form.is_valid():
            quoted = form.cleaned_data["quote"]
            try:
                done = plan_changes.confirm(
                    account,
                    plan,
                    actor=_actor(request),
                    now=now,
                    quoted_at=quoted.at,
                    quoted_net=quoted.net,
                    scheduled=quoted.scheduled,
                )
            except plan_changes.PriceMoved as exc:
                messages.info(request, f"Nothing was changed: {exc}. Here it is again.")
                status = 409
            except SubscriberError as exc:
                messages.error(request, f"Nothing was changed: {exc}.")
                status = 409
            else:
                return _done(request, plan, done)
        else:
            reason = " ".join(form.errors.get("quote", ["Please confirm again."]))
            messages.info(request, f"Nothing was changed. {reason} Here it is again.")
            status = 400
    try:
        quote = plan_changes.quote(account, plan, now=now, actor=_actor(request))
    except SubscriberError as exc:
        context = {"account": account, "plan": plan, "refused": str(exc)}
        return render_page(request, "portal/plan_preview.html", context, status=status)
    context = {
        "account": account,
        "plan": plan,
        "quote": quote,
        "net_shown": abs(quote.preview.net),
        "form": ConfirmForm(initial={"quote": sign_quote(quote)}, account=account, plan=plan),
        "pending": plan_changes.pending_for([account]).get(account.pk),
    }
    return render_page(request, "portal/plan_preview.html", context, status=status)


def _done(request, plan, done):
    if isinstance(done, PlanChange):
        when = timezone.localtime(done.at)
        messages.success(
            request,
            f"Done: your plan becomes {plan.name} on {when:%d %b %Y} at {when:%H:%M}. "
            "Nothing is charged now.",
        )
    else:
        if done.net > 0:
            money = f"KES {done.net:,.2f} was added to your bill."
        elif done.net < 0:
            money = f"KES {-done.net:,.2f} was credited to your account."
        else:
            money = "Nothing was charged or credited."
        messages.success(
            request,
            f"Done: your plan is now {plan.name}. {money} "
            f"Amount due now: KES {done.owed_after:,.2f}.",
        )
    return redirect("portal:plan")


@require_POST
@customer_page
def cancel(request, pk):
    change = get_scheduled_for(request, pk)
    if plan_changes.cancel(change, actor=_actor(request), now=timezone.now()):
        messages.success(request, f"The change to {change.plan.name} is cancelled.")
    return redirect("portal:plan")


urls = [
    path("my/plan/", plan, name="plan"),
    path("my/plan/<int:account>/to/<int:plan_id>/", preview, name="plan_preview"),
    path("my/plan/scheduled/<int:pk>/cancel/", cancel, name="plan_cancel"),
]
