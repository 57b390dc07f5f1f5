"""The Celery app. Tasks run in the schema of the ISP that sent them (tenant-schemas-celery
puts the schema in a message header when a task is sent inside a tenant context)."""

import os

from celery.signals import task_prerun
from django.db import connections
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ispops.settings")

app = CeleryApp("ispops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["ispops", "ispops.staff", "ispops.tenancy"])


@task_prerun.connect
def _fresh_enough_connections(**_):
    """What Django does before each request, before each task: a connection that broke
    or outlived CONN_MAX_AGE is closed (the task opens a new one). Celery itself keeps
    them (CELERY_DB_REUSE_MAX in settings)."""
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
