"""Tenant isolation: a staff user of one ISP gets nothing of another, whatever they try."""

from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch, User


def _beta_only_ids(alpha, beta, model):
    with tenant_context(alpha.isp):
        alpha_ids = set(model.objects.values_list("id", flat=True))
    with tenant_context(beta.isp):
        beta_ids = set(model.objects.values_list("id", flat=True))
    connection.set_schema_to_public()
    return sorted(beta_ids - alpha_ids), sorted(beta_ids & alpha_ids)


def test_alpha_session_is_not_a_login_on_betas_host(alpha, beta):
    client = alpha.client(alpha.owner)
    assert client.get("/").status_code == 200
    # The same cookie presented to beta's host: beta's schema has no such session.
    response = client.get("/", HTTP_HOST=beta.host)
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert client.get("/staff/", HTTP_HOST=beta.host).status_code == 302


def test_alpha_credentials_do_not_log_in_on_beta(alpha, beta):
    client = Client(HTTP_HOST=beta.host)
    response = client.post(
        "/login/", {"username": alpha.owner.email, "password": "correct-horse-battery-9"}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_ids_of_beta_records_give_alpha_nothing(alpha, beta):
    client = alpha.client(alpha.owner)
    only_beta, shared = _beta_only_ids(alpha, beta, Branch)
    assert only_beta, "beta has branches whose ids alpha lacks"
    for branch_id in only_beta:
        assert client.get(f"/branches/{branch_id}/").status_code == 404
    with tenant_context(beta.isp):
        beta_names = set(Branch.objects.values_list("name", flat=True))
    connection.set_schema_to_public()
    for branch_id in shared:
        page = client.get(f"/branches/{branch_id}/").content.decode()
        assert not any(name in page for name in beta_names)


def test_staff_ids_of_beta_show_alpha_records_or_nothing(alpha, beta):
    client = alpha.client(alpha.owner)
    with tenant_context(beta.isp):
        beta_users = {u.pk: u.email for u in User.objects.all()}
        extra = User.objects.create_user("late@beta.test", "x-pass-12345")
    connection.set_schema_to_public()
    for pk, email in {**beta_users, extra.pk: extra.email}.items():
        response = client.get(f"/staff/{pk}/")
        assert response.status_code in (200, 404)
        assert email not in response.content.decode()


def test_changing_a_beta_id_from_alpha_changes_nothing_in_beta(alpha, beta):
    with tenant_context(beta.isp):
        target = User.objects.create_user("target@beta.test", "x-pass-12345", role="support")
    connection.set_schema_to_public()
    client = alpha.client(alpha.owner)
    response = client.post(f"/staff/{target.pk}/active/", {"active": "0"})
    assert response.status_code in (302, 404)
    with tenant_context(beta.isp):
        target.refresh_from_db()
        assert target.is_active


def test_unknown_host_gets_404(client, tenants, db):
    assert client.get("/login/", HTTP_HOST="nobody.localhost").status_code == 404
