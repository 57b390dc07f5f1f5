from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "ispops.audit"
    label = "audit"
    verbose_name = "Audit log"
