"""Audit log: who changed what, from what to what, shown on the record's page."""

from django_tenants.utils import tenant_context

from ispops import audit
from ispops.audit.models import AuditEntry
from ispops.staff.models import Branch, Role


def test_staff_change_records_who_changed_what(alpha):
    owner = alpha.client(alpha.owner)
    response = owner.post(
        f"/staff/{alpha.technician.pk}/",
        {"full_name": "Tech Renamed", "phone": "0712345678", "role": Role.SUPPORT},
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        entry = AuditEntry.objects.for_object(alpha.technician).filter(action="update").first()
        assert entry.actor == alpha.owner
        assert entry.actor_label == alpha.owner.email
        assert entry.changes["role"] == [Role.TECHNICIAN, Role.SUPPORT]
        assert entry.changes["full_name"] == ["Technician Alpha Net", "Tech Renamed"]
        assert "password" not in entry.changes

    page = owner.get(f"/staff/{alpha.technician.pk}/").content.decode()
    assert "History" in page
    assert f"<strong>{alpha.owner}</strong> updated" in page  # by name, not email
    assert "technician" in page and "support" in page


def test_branch_limits_are_audited_as_before_and_after(alpha):
    owner = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        branch = Branch.objects.first()
    owner.post(
        f"/staff/{alpha.support.pk}/",
        {"full_name": "S", "phone": "", "role": Role.SUPPORT, "branches": [branch.pk]},
    )
    with tenant_context(alpha.isp):
        entry = (
            AuditEntry.objects.for_object(alpha.support).filter(changes__has_key="branches").get()
        )
        assert entry.changes["branches"] == [[], [branch.name]]


def test_changes_without_a_user_are_attributed_to_the_system_or_named_job(in_alpha):
    branch = Branch.objects.create(name="Thika", code="thika")
    created = AuditEntry.objects.for_object(branch).get()
    assert created.actor is None and created.actor_label == "system"
    assert created.changes["name"] == "Thika"
    with audit.acting_as("billing run 2026-11-23"):
        branch.address = "Thika Road"
        branch.save(update_fields=["address"])
    entry = AuditEntry.objects.for_object(branch).filter(action="update").get()
    assert entry.actor_label == "billing run 2026-11-23"
    assert entry.changes == {"address": ["", "Thika Road"]}


def test_saving_without_changes_records_nothing(in_alpha):
    branch = Branch.objects.create(name="Juja", code="juja")
    branch.save()
    assert AuditEntry.objects.for_object(branch).count() == 1


def test_delete_is_recorded(in_alpha):
    branch = Branch.objects.create(name="Athi River", code="athi")
    pk = branch.pk
    branch.delete()
    assert AuditEntry.objects.filter(
        model="staff.branch", object_id=str(pk), action="delete"
    ).exists()


def test_audit_entries_stay_in_their_tenant(alpha, beta):
    with tenant_context(alpha.isp):
        Branch.objects.create(name="Only in alpha", code="only-alpha")
    with tenant_context(beta.isp):
        assert not AuditEntry.objects.filter(object_repr="Only in alpha").exists()
