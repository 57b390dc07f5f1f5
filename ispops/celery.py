"""The Celery app. Tasks run in the schema of the ISP that sent them (tenant-schemas-celery
puts the schema in a message header when a task is sent inside a tenant context)."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ispops.settings")

app = CeleryApp("ispops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["ispops", "ispops.staff", "ispops.tenancy"])
