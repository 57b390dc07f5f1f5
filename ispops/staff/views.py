"""Staff pages: login and passwords, the home page, staff management, branches."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.shortcuts import get_object_or_404, redirect, render

from ispops.staff import home as staff_home
from ispops.staff import services
from ispops.staff.access import ALL_STAFF, MANAGERS, logged_in, public, roles
from ispops.staff.forms import BranchForm, InviteForm, StaffForm, ThrottledLoginForm
from ispops.staff.models import Branch, Role, User


class LoginView(auth_views.LoginView):
    form_class = ThrottledLoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.locked:
            response.status_code = 429
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # Django names the site by its host here (RequestSite); the page shows the
        # ISP's name from the shell's context processor instead, and its logo.
        context.pop("site", None)
        context.pop("site_name", None)
        if connection.schema_name != "public":
            from billing.models import BillingSettings

            context["has_logo"] = bool(BillingSettings.load().logo)
        return context


class PasswordResetView(auth_views.PasswordResetView):
    def form_valid(self, form):
        # The email's site_name would be the host (RequestSite): it names the ISP.
        tenant = getattr(connection, "tenant", None)
        on_platform = connection.schema_name == "public"
        name = "ispops platform" if on_platform else getattr(tenant, "name", "")
        self.extra_email_context = {"site_name": name} if name else None
        return super().form_valid(form)


login = public(LoginView.as_view())
logout = public(auth_views.LogoutView.as_view())
password_change = logged_in(auth_views.PasswordChangeView.as_view())
password_change_done = logged_in(auth_views.PasswordChangeDoneView.as_view())
password_reset = public(PasswordResetView.as_view())
password_reset_done = public(auth_views.PasswordResetDoneView.as_view())
password_reset_confirm = public(auth_views.PasswordResetConfirmView.as_view())
password_reset_complete = public(auth_views.PasswordResetCompleteView.as_view())


@public
def public_home(request):
    if request.user.is_authenticated and request.user.is_superuser:
        return redirect("platform:isps")
    return redirect("login")


@roles(*ALL_STAFF, Role.AGENT)
def home(request):
    own = staff_home.home_of(request.user.role)
    if own is not None:
        return own(request)  # a voucher agent's home is their own cards and ledger
    month = staff_home.figures(request.user, staff_home.MONTH)
    shown = {f["label"] for f in month}
    context = {
        "isp": connection.tenant,
        # A figure the month already shows (active subscribers) is not shown twice.
        "figures": [f for f in staff_home.figures(request.user) if f["label"] not in shown],
        "month_figures": month,
    }
    return render(request, "staff/home.html", context)


# --- staff management (owners) ----------------------------------------------------


def refuse_branch_limited(request) -> None:
    """Staff, their roles and branches are the whole ISP's business: an owner limited to
    some branches does not see or change them (they could otherwise see every branch's
    people, or lift their own limit)."""
    if request.user.branch_ids() is not None:
        raise PermissionDenied("Staff are managed by an owner with no branch limit.")


def get_staff_for(request, pk) -> User:
    """A staff member of this ISP that the requester may manage (owners: anyone)."""
    refuse_branch_limited(request)
    return get_object_or_404(User, pk=pk)


@roles(Role.OWNER)
def staff_list(request):
    refuse_branch_limited(request)
    people = User.objects.prefetch_related("branches").order_by("-is_active", "full_name")
    page = Paginator(people, 25).get_page(request.GET.get("page"))
    return render(request, "staff/staff_list.html", {"page": page})


@roles(Role.OWNER)
def staff_invite(request):
    refuse_branch_limited(request)
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.invite_staff(
                actor=request.user,
                email=data["email"],
                full_name=data["full_name"],
                role=data["role"],
                branches=data["branches"],
                request=request,
            )
        except services.StaffError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, f"Invitation sent to {user.email}.")
            return redirect("staff_detail", pk=user.pk)
    return render(request, "staff/staff_invite.html", {"form": form})


@roles(Role.OWNER)
def staff_detail(request, pk):
    person = get_staff_for(request, pk)
    initial = {
        "full_name": person.full_name,
        "phone": person.phone,
        "role": person.role,
        "branches": person.branches.all(),
    }
    form = StaffForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.update_staff(
                actor=request.user,
                user=person,
                full_name=data["full_name"],
                phone=data["phone"],
                role=data["role"],
                branches=data["branches"],
            )
        except services.StaffError as exc:
            form.add_error("role", str(exc))
        else:
            messages.success(request, "Saved.")
            return redirect("staff_detail", pk=person.pk)
    return render(request, "staff/staff_detail.html", {"person": person, "form": form})


@roles(Role.OWNER)
def staff_set_active(request, pk):
    person = get_staff_for(request, pk)
    if request.method != "POST":
        return redirect("staff_detail", pk=person.pk)
    active = request.POST.get("active") == "1"
    try:
        services.set_staff_active(actor=request.user, user=person, active=active)
    except services.StaffError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{person} {'reactivated' if active else 'deactivated'}.")
    return redirect("staff_detail", pk=person.pk)


@roles(Role.OWNER)
def staff_resend_invite(request, pk):
    person = get_staff_for(request, pk)
    if request.method == "POST":
        services.send_invitation(person, isp_name=request.tenant.name, request=request)
        messages.success(request, f"Invitation sent again to {person.email}.")
    return redirect("staff_detail", pk=person.pk)


# --- branches ---------------------------------------------------------------------


@roles(*MANAGERS)
def branch_list(request):
    form = BranchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        branch = form.save()
        messages.success(request, f"Branch {branch} added.")
        return redirect("branches")
    branches = Branch.objects.visible_to(request.user)
    return render(request, "staff/branch_list.html", {"branches": branches, "form": form})


@roles(*MANAGERS)
def branch_detail(request, pk):
    branch = get_object_or_404(Branch.objects.visible_to(request.user), pk=pk)
    form = BranchForm(request.POST or None, instance=branch)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect("branch_detail", pk=branch.pk)
    return render(request, "staff/branch_detail.html", {"branch": branch, "form": form})
