"""Operations on staff: login throttling, invitations, role and branch changes,
deactivation. Views and commands call these; nothing else writes staff rows."""

import unicodedata
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from ispops import audit
from ispops.lib.urls import absolute_url
from ispops.staff.models import Branch, LoginFailure, Role, User


class StaffError(ValueError):
    """A staff operation that the rules refuse; the message is shown to the user."""


# --- login throttling -------------------------------------------------------------


def _window():
    return timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def login_keys(username: str) -> list[str]:
    """What failed logins with this name are counted under: the id of every user the
    login's own lookup finds (PostgreSQL's case-insensitive match, which folds more than
    Python's lower(): a dotless i finds an i), and the name itself, NFKC-normalised and
    case-folded, for names that find nobody. Keying on the user, not on the spelling,
    means no other spelling of a locked login gets fresh tries."""
    name = unicodedata.normalize("NFKC", username.strip()).casefold()
    users = User.objects.filter(email__iexact=username.strip()).values_list("id", flat=True)
    return [f"user:{pk}" for pk in users] + [f"name:{name}"[:254]]


def login_lock_seconds(username: str, ip: str | None) -> int:
    """Seconds until this login name (or address) may try again; 0 when not locked."""
    since = timezone.now() - _window()
    recent = LoginFailure.objects.filter(at__gte=since)
    limit = settings.LOGIN_FAILURE_LIMIT
    candidates = [(recent.filter(username=key), limit) for key in login_keys(username)]
    if ip:
        candidates.append((recent.filter(ip=ip), limit * 4))
    wait = 0
    for failures, cap in candidates:
        times = list(failures.order_by("-at").values_list("at", flat=True)[:cap])
        if len(times) >= cap:
            # Unlocks once the oldest of the last `cap` failures leaves the window.
            unlock_at = times[-1] + _window()
            wait = max(wait, int((unlock_at - timezone.now()).total_seconds()) + 1)
    return wait


def record_login_failure(username: str, ip: str | None) -> None:
    LoginFailure.objects.bulk_create(
        LoginFailure(username=key, ip=ip) for key in login_keys(username)
    )


def clear_login_failures(user: User) -> None:
    """After a good login: forget the failures counted against this user."""
    LoginFailure.objects.filter(username__in=login_keys(user.email)).delete()


def purge_login_failures() -> int:
    """Drop failures older than the window; they no longer count for anything."""
    deleted, _ = LoginFailure.objects.filter(at__lt=timezone.now() - _window()).delete()
    return deleted


# --- invitations and changes ------------------------------------------------------


def set_password_url(user: User, request=None, host: str | None = None) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    return absolute_url(path, request=request, host=host)


def send_invitation(user: User, *, isp_name: str, request=None, host: str | None = None):
    link = set_password_url(user, request=request, host=host)
    body = render_to_string(
        "staff/invitation_email.txt", {"user": user, "link": link, "isp_name": isp_name}
    )
    send_mail(f"Your {isp_name} staff account", body, None, [user.email])


def create_owner(email: str, password: str | None, full_name: str = "") -> User:
    """The first login of a new ISP. Runs inside the ISP's schema."""
    return User.objects.create_user(
        email, password, role=Role.OWNER, full_name=full_name or "Owner"
    )


def invite_staff(*, actor: User, email: str, full_name: str, role: str, branches, request):
    """Create a staff login with no password and email them a link to set one."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise StaffError(f"{email} already has a login here.")
    with transaction.atomic(), audit.acting_as(actor):
        user = User.objects.create_user(
            email, None, full_name=full_name, role=role, invited_by=actor
        )
        user.branches.set(branches)
        isp_name = request.tenant.name
        transaction.on_commit(lambda: send_invitation(user, isp_name=isp_name, request=request))
    return user


def update_staff(*, actor: User, user: User, full_name: str, phone: str, role: str, branches):
    if user.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(user)
    with transaction.atomic(), audit.acting_as(actor):
        user.full_name, user.phone, user.role = full_name, phone, role
        user.save(update_fields=["full_name", "phone", "role"])
        user.branches.set(branches)
    return user


def set_staff_active(*, actor: User, user: User, active: bool) -> User:
    """Deactivate or reactivate a login. A deactivated user's sessions stop working at
    their next request (the auth backend refuses inactive users)."""
    if not active:
        if user.pk == actor.pk:
            raise StaffError("You cannot deactivate yourself.")
        if user.role == Role.OWNER:
            _ensure_another_owner(user)
    with transaction.atomic(), audit.acting_as(actor):
        user.is_active = active
        user.save(update_fields=["is_active"])
    return user


def _ensure_another_owner(user: User) -> None:
    others = User.objects.filter(role=Role.OWNER, is_active=True).exclude(pk=user.pk)
    if not others.exists():
        raise StaffError("An ISP needs at least one active owner.")


def home_figures(user) -> list[dict]:
    """The staff home page's own figures: active staff, and the branches `user` sees."""
    return [
        {"label": "Active staff", "value": User.objects.filter(is_active=True).count()},
        {"label": "Branches", "value": Branch.objects.visible_to(user).count()},
    ]
