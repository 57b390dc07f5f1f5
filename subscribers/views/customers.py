"""Customer pages: the subscriber list (search, filters, CSV export), the customer's
360 view, creating and editing customers, and a service account's page (status moves,
plan changes, logins, add-ons and discounts)."""

import csv
from itertools import chain

from django.contrib import messages
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Prefetch, Q, Value
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from billing import services as billing_services
from ispops.audit.display import loaded_relations, readable
from ispops.audit.models import AuditEntry
from ispops.lib import csvexport
from ispops.lib.htmx import render_partial
from ispops.lib.pagination import CappedPaginator
from ispops.messaging import services as messaging
from ispops.staff.access import any_staff, roles
from ispops.staff.models import Role
from network import monitoring
from subscribers import listing, services
from subscribers.forms import (
    AddOnForm,
    CustomerFilterForm,
    CustomerForm,
    DiscountForm,
    NewServiceAccountForm,
    PlanChangeForm,
    ServiceAccountForm,
    StatusForm,
)
from subscribers.models import (
    AddOn,
    Customer,
    InstallationStep,
    ServiceAccount,
    StatusChange,
)

EDITORS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
STATUS_MOVERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT, Role.FINANCE)
MONEY_PEOPLE = (Role.OWNER, Role.ADMIN, Role.FINANCE)


def get_customer_for(request, pk) -> Customer:
    """The customer, if this staff member's branches include theirs; else 404."""
    queryset = Customer.objects.visible_to(request.user).select_related(
        "branch", "site__parent__parent"
    )
    return get_object_or_404(queryset, pk=pk)


def get_account_for(request, pk) -> ServiceAccount:
    visible = Customer.objects.visible_to(request.user)
    queryset = ServiceAccount.objects.select_related("customer", "plan", "router", "site").filter(
        customer__in=visible
    )
    return get_object_or_404(queryset, pk=pk)


def filtered_customers(request, form: CustomerFilterForm):
    customers = Customer.objects.visible_to(request.user)
    if not form.is_valid():
        return customers.none()
    return listing.filter_customers(
        customers, form.cleaned_data, overdue=listing.wants_overdue(request.GET)
    )


@any_staff
def customer_list(request):
    form = CustomerFilterForm(request.GET or None, user=request.user)
    customers = (
        filtered_customers(request, form)
        if request.GET
        else (Customer.objects.visible_to(request.user))
    )
    live = ServiceAccount.objects.exclude(status=ServiceAccount.Status.TERMINATED)
    customers = customers.for_list().prefetch_related(
        Prefetch("service_accounts", queryset=live.select_related("plan"), to_attr="live_accounts")
    )
    page = CappedPaginator(customers, 25).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "can_export": request.user.role in MONEY_PEOPLE,
        "can_edit": request.user.role in EDITORS,
        "can_bulk": request.user.role in STATUS_MOVERS,
    }
    return render_partial(request, "subscribers/customers/list.html", "results", context)


class _Echo:
    def write(self, value):
        return value


@roles(*MONEY_PEOPLE)
def customer_export(request):
    form = CustomerFilterForm(request.GET or None, user=request.user)
    customers = (
        filtered_customers(request, form)
        if request.GET
        else (Customer.objects.visible_to(request.user))
    )
    customers = customers.for_list().prefetch_related("service_accounts__plan").order_by("id")
    writer = csv.writer(_Echo())
    header = [
        "account",
        "name",
        "phone",
        "alt_phone",
        "email",
        "id_number",
        "status",
        "branch",
        "site",
        "plans",
        "usernames",
        "tags",
        "created",
    ]

    def rows():
        yield writer.writerow(header)
        for c in customers.iterator(chunk_size=2000):
            live = [a for a in c.service_accounts.all() if a.status != "terminated"]
            yield writer.writerow(
                # Every cell through csvexport: names, tags, emails and ID numbers are
                # typed by staff or imported, and a spreadsheet would run "=..." ones.
                csvexport.row(
                    [
                        c.account,
                        c.name,
                        c.phone,
                        c.alt_phone,
                        c.email,
                        c.id_number,
                        c.status,
                        c.branch.name if c.branch else "",
                        c.site.name if c.site else "",
                        "; ".join(a.plan.name for a in live),
                        "; ".join(a.username for a in live if a.username),
                        ", ".join(c.tags),
                        timezone.localtime(c.created_at).strftime("%Y-%m-%d"),
                    ]
                )
            )

    stamp = timezone.localdate().isoformat()
    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="subscribers-{stamp}.csv"'
    return response


@any_staff
def customer_detail(request, pk):
    customer = get_customer_for(request, pk)
    today = timezone.localdate()
    accounts = list(
        customer.service_accounts.select_related(
            "plan", "router", "site__parent__parent", "installation"
        ).annotate(
            # Folded into the accounts query: the page stays within its query budget.
            addon_names=ArrayAgg(
                "addons__name",
                distinct=True,
                default=Value([]),
                filter=Q(addons__starts_on__lte=today)
                & (Q(addons__ends_on__isnull=True) | Q(addons__ends_on__gte=today)),
            ),
            discount_reasons=ArrayAgg(
                "discounts__reason",
                distinct=True,
                default=Value([]),
                filter=Q(discounts__starts_on__lte=today, discounts__ends_on__gte=today),
            ),
        )
    )
    steps = list(
        InstallationStep.objects.filter(
            installation__service_account__customer=customer
        ).select_related("installation", "actor")
    )
    context = {
        "customer": customer,
        "accounts": accounts,
        "balance": billing_services.customer_balance(customer),
        "installations": [a.installation for a in accounts if _has_installation(a)],
        "site_paths": _site_paths([customer.site, *(a.site for a in accounts)]),
        "sessions": monitoring.sessions_for_accounts(accounts),
        "messages_log": messaging.recent_for(customer),
        "invoices": list(customer.invoices.order_by("-issued_on", "-id")[:5]),
        "timeline": _timeline(customer, accounts, steps),
        "can_edit": request.user.role in EDITORS,
    }
    return render(request, "subscribers/customers/detail.html", context)


def _has_installation(account) -> bool:
    try:
        return account.installation is not None
    except ServiceAccount.installation.RelatedObjectDoesNotExist:
        return False


def _site_paths(sites) -> dict:
    """{site id: "POP > Tower > Sector"}, walking parents already joined in (the usual
    three levels cost no query; a deeper tree loads the rest as it goes)."""
    paths = {}
    for site in sites:
        if site is None or site.pk in paths:
            continue
        names, node, guard = [], site, 0
        while node is not None and guard < 20:
            names.append(node.name)
            node, guard = node.parent, guard + 1
        paths[site.pk] = " > ".join(reversed(names))
    return paths


def _timeline(customer, accounts, steps, limit=60):
    """Everything that happened to the customer and their accounts, newest first: who
    by name, what by its account's login, changes as people read them (names, not
    ids; Nairobi times)."""
    account_ids = [a.pk for a in accounts]
    logins = {str(a.pk): a.username or "(no login)" for a in accounts}
    audit_rows = readable(
        AuditEntry.objects.filter(
            Q(model="subscribers.customer", object_id=str(customer.pk))
            | Q(model="subscribers.serviceaccount", object_id__in=[str(i) for i in account_ids])
        )
        .select_related("actor")
        .order_by("-at")[:limit],
        known=loaded_relations(customer, *accounts),
    )
    changes = (
        StatusChange.objects.filter(service_account_id__in=account_ids)
        .select_related("actor")
        .order_by("-at")[:limit]
    )
    events = chain(
        (
            {
                "at": e.at,
                "who": _who(e),
                "what": f"{e.get_action_display()} "
                + (
                    "customer"
                    if e.model.endswith("customer")
                    else f"service account {logins.get(e.object_id, e.object_repr)}"
                ),
                "changes": e.readable,
            }
            for e in audit_rows
            if not _only_status_fields(e)
        ),
        (
            {
                "at": c.at,
                "who": _who(c),
                "what": f"Status {c.from_status or 'new'} → {c.to_status}",
                "detail": c.reason,
            }
            for c in changes
        ),
        (
            {
                "at": s.at,
                "who": _who(s),
                "what": f"Installation: {s.get_stage_display()}",
                "detail": s.note,
            }
            for s in steps
        ),
    )
    return sorted(events, key=lambda e: e["at"], reverse=True)[:limit]


def _who(row) -> str:
    """A person by name (their email only if they have none); a job by its label."""
    return str(row.actor) if row.actor_id else row.actor_label


_STATUS_FIELDS = {"status", "activated_at", "suspended_at", "terminated_at"}


def _only_status_fields(entry) -> bool:
    """An audit update that only moved a status: the StatusChange row tells it better."""
    return entry.action == "update" and set(entry.changes) <= _STATUS_FIELDS


@roles(*EDITORS)
def customer_new(request):
    form = CustomerForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in services.CUSTOMER_FIELDS}
        try:
            customer = services.create_customer(actor=request.user, **data)
        except services.SubscriberError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Customer {customer.account} created.")
            return redirect("subscribers:detail", customer.pk)
    return render(request, "subscribers/customers/form.html", {"form": form, "customer": None})


@roles(*EDITORS)
def customer_edit(request, pk):
    customer = get_customer_for(request, pk)
    form = CustomerForm(request.POST or None, instance=customer, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in services.CUSTOMER_FIELDS}
        customer.refresh_from_db()  # the bound form wrote into the instance
        try:
            services.update_customer(customer, actor=request.user, **data)
        except services.SubscriberError as exc:
            form.add_error("phone" if "phone" in str(exc) else None, str(exc))
        else:
            messages.success(request, "Saved.")
            return redirect("subscribers:detail", customer.pk)
    return render(request, "subscribers/customers/form.html", {"form": form, "customer": customer})


# --- service accounts -------------------------------------------------------------


@roles(*EDITORS)
def account_new(request, pk):
    customer = get_customer_for(request, pk)
    form = NewServiceAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            account = services.create_service_account(
                actor=request.user,
                customer=customer,
                plan=data["plan"],
                username=data["username"],
                password=data["password"],
                static_ip=data["static_ip"],
                mac=data["mac"],
                router=data["router"],
                site=data["site"],
            )
        except services.SubscriberError as exc:
            form.add_error("username", str(exc))
        else:
            messages.success(request, "Service account added as a lead.")
            return redirect("subscribers:account", account.pk)
    return render(
        request, "subscribers/customers/account_new.html", {"form": form, "customer": customer}
    )


@any_staff
def account_detail(request, pk):
    account = get_account_for(request, pk)
    role = request.user.role
    context = {
        "account": account,
        "customer": account.customer,
        "status_form": StatusForm(account=account) if role in STATUS_MOVERS else None,
        "plan_form": PlanChangeForm(initial={"plan": account.plan})
        if role in STATUS_MOVERS
        else None,
        "login_form": ServiceAccountForm(
            user=request.user,
            initial={
                "username": account.username,
                "static_ip": account.static_ip,
                "mac": account.mac,
                "router": account.router,
                "site": account.site,
            },
        )
        if role in EDITORS
        else None,
        "addon_form": AddOnForm() if role in MONEY_PEOPLE else None,
        "discount_form": DiscountForm() if role in MONEY_PEOPLE else None,
        "history": account.status_changes.select_related("actor")[:50],
        "router_jobs": account.router_jobs.select_related("router")[:10],
        "session": monitoring.sessions_for_accounts([account]).get(account.pk),
        "addons": account.addons.all(),
        "discounts": account.discounts.all(),
        "today": timezone.localdate(),
    }
    return render(request, "subscribers/customers/account.html", context)


@roles(*STATUS_MOVERS)
def account_status(request, pk):
    account = get_account_for(request, pk)
    if request.method != "POST":
        return redirect("subscribers:account", pk)
    form = StatusForm(request.POST, account=account)
    if not form.is_valid():
        return HttpResponseBadRequest(_form_reason(form))
    try:
        services.change_status(
            account, form.cleaned_data["to"], actor=request.user, reason=form.cleaned_data["reason"]
        )
    except services.SubscriberError as exc:
        return HttpResponseBadRequest(str(exc))
    messages.success(request, f"Status is now {account.get_status_display()}.")
    return redirect("subscribers:account", pk)


@roles(*STATUS_MOVERS)
def account_plan(request, pk):
    account = get_account_for(request, pk)
    form = PlanChangeForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return HttpResponseBadRequest(_form_reason(form))
    try:
        services.change_plan(account, form.cleaned_data["plan"], actor=request.user)
    except services.SubscriberError as exc:
        # A refused change (a prepaid upgrade the ISP holds until renewal) changes
        # nothing: said on the account page, not a 500.
        messages.error(request, f"The plan was not changed: {exc}.")
    else:
        messages.success(request, f"Plan changed to {account.plan}.")
    return redirect("subscribers:account", pk)


@roles(*EDITORS)
def account_login(request, pk):
    account = get_account_for(request, pk)
    form = ServiceAccountForm(request.POST or None, user=request.user)
    if request.method != "POST" or not form.is_valid():
        return HttpResponseBadRequest(_form_reason(form))
    try:
        services.update_service_account(account, actor=request.user, **form.cleaned_data)
    except services.SubscriberError as exc:
        return HttpResponseBadRequest(str(exc))
    messages.success(request, "Login and network details saved.")
    return redirect("subscribers:account", pk)


@roles(*MONEY_PEOPLE)
def account_addon(request, pk):
    account = get_account_for(request, pk)
    form = AddOnForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return HttpResponseBadRequest(_form_reason(form))
    services.add_addon(account, actor=request.user, **form.cleaned_data)
    messages.success(request, "Add-on added.")
    return redirect("subscribers:account", pk)


@roles(*MONEY_PEOPLE)
def addon_end(request, pk, addon_pk):
    account = get_account_for(request, pk)
    addon = get_object_or_404(AddOn, pk=addon_pk, service_account=account)
    if request.method == "POST":
        services.end_addon(addon, actor=request.user)
        messages.success(request, f"{addon.name} ends today.")
    return redirect("subscribers:account", pk)


@roles(*MONEY_PEOPLE)
def account_discount(request, pk):
    account = get_account_for(request, pk)
    form = DiscountForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return HttpResponseBadRequest(_form_reason(form))
    services.add_discount(account, actor=request.user, **form.cleaned_data)
    messages.success(request, "Discount added.")
    return redirect("subscribers:account", pk)


def _form_reason(form) -> str:
    if not form.is_bound:
        return "POST the form"
    return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())


urls = [
    path("subscribers/", customer_list, name="list"),
    path("subscribers/export.csv", customer_export, name="export"),
    path("subscribers/new/", customer_new, name="new"),
    path("subscribers/<int:pk>/", customer_detail, name="detail"),
    path("subscribers/<int:pk>/edit/", customer_edit, name="edit"),
    path("subscribers/<int:pk>/accounts/new/", account_new, name="account_new"),
    path("accounts/<int:pk>/", account_detail, name="account"),
    path("accounts/<int:pk>/status/", account_status, name="account_status"),
    path("accounts/<int:pk>/plan/", account_plan, name="account_plan"),
    path("accounts/<int:pk>/login/", account_login, name="account_login"),
    path("accounts/<int:pk>/addons/", account_addon, name="account_addon"),
    path("accounts/<int:pk>/addons/<int:addon_pk>/end/", addon_end, name="addon_end"),
    path("accounts/<int:pk>/discounts/", account_discount, name="account_discount"),
]
