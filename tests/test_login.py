"""Login, throttling, session expiry, invitations, password reset, deactivation."""

import re
from datetime import timedelta

import time_machine
from django.core import mail
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.staff.models import Role, User
from tests.conftest import PASSWORD


def _login(client, email, password):
    return client.post("/login/", {"username": email, "password": password})


def test_login_with_correct_password_reaches_home(alpha):
    client = alpha.client()
    response = _login(client, alpha.owner.email, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert "Alpha Net" in home.content.decode()


def test_login_is_case_insensitive_on_email(alpha):
    assert _login(alpha.client(), alpha.owner.email.upper(), PASSWORD).status_code == 302


def test_login_throttled_after_repeated_failures(alpha, settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    client = alpha.client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(5):
            response = _login(client, alpha.support.email, "wrong-password")
            assert response.status_code == 200
            assert "correct email" in response.content.decode()
        # Locked: even the right password is refused, without being checked.
        response = _login(client, alpha.support.email, PASSWORD)
        assert response.status_code == 429
        assert "Too many failed attempts" in response.content.decode()
        assert "_auth_user_id" not in client.session
        # Another login from elsewhere is not locked by this one's failures.
        assert _login(alpha.client(), alpha.finance.email, PASSWORD).status_code == 302
        clock.shift(timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS + 1))
        assert _login(client, alpha.support.email, PASSWORD).status_code == 302


def test_many_logins_from_one_address_are_throttled(alpha, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    client = alpha.client()
    for i in range(8):
        _login(client, f"nobody{i}@alpha.test", "guess")
    response = _login(client, alpha.owner.email, PASSWORD)
    assert response.status_code == 429


def test_success_clears_earlier_failures(alpha, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    client = alpha.client()
    for _ in range(2):
        _login(client, alpha.admin.email, "nope")
    assert _login(client, alpha.admin.email, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, alpha.admin.email, "nope")
    assert _login(client, alpha.admin.email, PASSWORD).status_code == 302


def test_session_expires_after_idle_time(alpha, settings):
    client = alpha.client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _login(client, alpha.owner.email, PASSWORD)
        assert client.get("/").status_code == 200
        clock.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE + 60))
        response = client.get("/")
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_owner_invites_staff_who_sets_a_password_and_logs_in(
    alpha, django_capture_on_commit_callbacks
):
    owner = alpha.client(alpha.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            "/staff/invite/",
            {
                "email": "New.Tech@Alpha.test",
                "full_name": "New Tech",
                "role": Role.TECHNICIAN,
            },
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.tech@alpha.test"]
    link = re.search(r"http://alpha\.localhost(/password/set/\S+/)", message.body).group(1)

    invited = alpha.client()
    form = invited.get(link, follow=True)
    assert form.status_code == 200
    set_url = form.redirect_chain[-1][0]
    done = invited.post(
        set_url, {"new_password1": "Mpesa-Till-4455", "new_password2": "Mpesa-Till-4455"}
    )
    assert done.status_code == 302
    assert _login(alpha.client(), "new.tech@alpha.test", "Mpesa-Till-4455").status_code == 302


def test_inviting_an_existing_email_is_refused(alpha):
    response = alpha.client(alpha.owner).post(
        "/staff/invite/",
        {
            "email": alpha.support.email,
            "full_name": "Dup",
            "role": Role.SUPPORT,
        },
    )
    assert response.status_code == 200
    assert "already has a login" in response.content.decode()
    assert len(mail.outbox) == 0


def test_deactivated_staff_are_logged_out_at_their_next_request(alpha):
    victim = alpha.client(alpha.support)
    assert victim.get("/").status_code == 200
    response = alpha.client(alpha.owner).post(f"/staff/{alpha.support.pk}/active/", {"active": "0"})
    assert response.status_code == 302
    assert victim.get("/").status_code == 302
    assert _login(alpha.client(), alpha.support.email, PASSWORD).status_code == 200


def test_last_owner_cannot_be_deactivated_or_demoted(alpha):
    other_owner_client = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        assert User.objects.filter(role=Role.OWNER, is_active=True).count() == 1
    response = other_owner_client.post(
        f"/staff/{alpha.owner.pk}/",
        {"full_name": "Owner", "phone": "", "role": Role.ADMIN},
    )
    assert "at least one active owner" in response.content.decode()
    with tenant_context(alpha.isp):
        alpha.owner.refresh_from_db()
        assert alpha.owner.role == Role.OWNER


def test_password_reset_email_links_to_the_isps_own_host(alpha):
    response = alpha.client().post("/password/reset/", {"email": alpha.finance.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "http://alpha.localhost/password/set/" in mail.outbox[0].body
    assert f"{alpha.finance.email} on Alpha Net." in mail.outbox[0].body  # not the host


def test_password_change(alpha):
    client = alpha.client(alpha.finance)
    response = client.post(
        "/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": "Paybill-888-new",
            "new_password2": "Paybill-888-new",
        },
    )
    assert response.status_code == 302
    assert _login(alpha.client(), alpha.finance.email, "Paybill-888-new").status_code == 302
