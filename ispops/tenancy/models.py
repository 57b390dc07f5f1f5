"""The tenant (Isp) and its hosts (Domain). Both live in the public schema."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class IspQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=Isp.Status.ACTIVE).exclude(schema_name="public")


class Isp(TenantMixin):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=120)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROVISIONING)
    owner_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    provision_error = models.TextField(blank=True)

    # Schemas are created by ispops.tenancy.services, which validates first and can
    # run the slow part in a worker; django-tenants' save() hook would do it blindly.
    auto_create_schema = False
    auto_drop_schema = False

    objects = IspQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def primary_host(self) -> str:
        domain = self.domains.filter(is_primary=True).first()
        return domain.domain if domain else ""


class Domain(DomainMixin):
    def __str__(self):
        return self.domain
