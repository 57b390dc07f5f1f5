"""Celery wrapper for the aged-receivables bucket actions (reports.aging.act_on_bucket),
queued by the aging page: run in the schema of the ISP that queued it."""

from celery import shared_task
from django.utils import timezone

from reports import aging
from subscribers.models import Customer


@shared_task
def act_on_bucket(bucket: str, action: str, actor: str, branch_ids=None) -> dict:
    customers = None if branch_ids is None else Customer.objects.filter(branch_id__in=branch_ids)
    return aging.act_on_bucket(bucket, action, actor=actor, at=timezone.now(), customers=customers)
