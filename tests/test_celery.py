"""Celery: tasks run by a real worker in the schema of the ISP that sent them."""

import pytest
from celery.result import AsyncResult
from django_tenants.utils import tenant_context

from ispops import tasks
from ispops.tenancy.models import Isp

pytestmark = pytest.mark.worker


def test_task_sent_from_a_tenant_runs_in_that_schema(alpha, beta, celery_worker_process):
    with tenant_context(alpha.isp):
        from_alpha = tasks.current_schema.delay()
    with tenant_context(beta.isp):
        from_beta = tasks.current_schema.delay()
    assert from_alpha.get(timeout=30) == "alpha"
    assert from_beta.get(timeout=30) == "beta"


def test_task_reads_its_own_tenants_rows(alpha, beta, celery_worker_process):
    with tenant_context(beta.isp):
        emails = tasks.staff_emails.delay().get(timeout=30)
    assert "owner@beta.test" in emails
    assert not any(email.endswith("@alpha.test") for email in emails)


def test_fan_out_reaches_every_active_isp_in_its_schema(tenants, db, celery_worker_process):
    sent = tasks.fan_out.apply_async(["ispops.tasks.current_schema"], ignore_result=False)
    sent = sent.get(timeout=30)
    active = set(Isp.objects.active().values_list("schema_name", flat=True))
    assert set(sent) == active >= {"alpha", "beta", "demo"}
    for schema, task_id in sent.items():
        assert AsyncResult(task_id).get(timeout=30) == schema
