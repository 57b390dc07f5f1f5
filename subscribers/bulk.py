"""Status changes for many service accounts at once: what `services.change_status` does
for one (row locks in the ledger's order, the status, its history and audit entries,
billing's timeline, the router jobs, the customers' summaries), in a handful of
statements for the lot. The expiry run suspends a thousand accounts expiring at the
same minute this way, a small batch per transaction so the first router jobs leave at
once.
"""

from datetime import datetime

from django.db import transaction

from billing import services as billing_services
from billing.ledger import lock_customers
from ispops import audit
from ispops.audit.models import AuditEntry
from network import services as network_services
from subscribers.models import Customer, ServiceAccount, StatusChange
from subscribers.services import customer_summary

Status = ServiceAccount.Status


def suspend_many(
    account_ids, *, actor, reasons: dict[int, str], at: datetime, suspension: str = "soft"
) -> list[ServiceAccount]:
    """Suspend those of `account_ids` still active, at `at`, each for its reason in
    `reasons`. Returns the accounts suspended (as they were before)."""
    user, label = audit.describe_actor(actor)
    with transaction.atomic():
        lock_customers(
            ServiceAccount.objects.filter(pk__in=account_ids).values_list("customer_id", flat=True)
        )
        accounts = list(
            ServiceAccount.objects.select_for_update(of=("self",), no_key=True)
            .select_related("plan", "customer")
            .filter(pk__in=account_ids, status=Status.ACTIVE)
            .order_by("id")
        )
        if not accounts:
            return []
        ids = [a.pk for a in accounts]
        ServiceAccount.objects.filter(pk__in=ids).update(
            status=Status.SUSPENDED, suspension=suspension, suspended_at=at
        )
        StatusChange.objects.bulk_create(
            StatusChange(
                service_account=a,
                from_status=Status.ACTIVE,
                to_status=Status.SUSPENDED,
                at=at,
                actor=user,
                actor_label=label,
                reason=reasons[a.pk][:255],
            )
            for a in accounts
        )
        AuditEntry.objects.bulk_create(
            AuditEntry(
                at=at,
                actor=user,
                actor_label=label,
                action=AuditEntry.Action.UPDATE,
                model="subscribers.serviceaccount",
                object_id=str(a.pk),
                object_repr=str(a)[:200],
                changes={
                    "status": [Status.ACTIVE, Status.SUSPENDED],
                    "suspension": ["", suspension],
                    "suspended_at": [
                        a.suspended_at.isoformat() if a.suspended_at else None,
                        at.isoformat(),
                    ],
                },
            )
            for a in accounts
        )
        billing_services.on_suspended_many(accounts, actor=actor, at=at)
        network_services.queue_accounts(accounts, actor=actor, action="suspend")
        refresh_customers({a.customer_id for a in accounts})
    return accounts


def refresh_customers(customer_ids) -> None:
    """`services.refresh_customer` for many customers: their status summaries and search
    text from their accounts, in two reads and a write per status."""
    rows: dict[int, list] = {}
    for customer_id, status, username in ServiceAccount.objects.filter(
        customer_id__in=customer_ids
    ).values_list("customer_id", "status", "username"):
        rows.setdefault(customer_id, []).append((status, username))
    by_status: dict[str, list[int]] = {}
    for customer in Customer.objects.filter(pk__in=customer_ids):
        status, search = customer_summary(customer, rows.get(customer.pk, []))
        if search != customer.search:  # rare here: a login changed
            Customer.objects.filter(pk=customer.pk).update(search=search)
        if status != customer.status:
            by_status.setdefault(status, []).append(customer.pk)
    for status, ids in by_status.items():
        Customer.objects.filter(pk__in=ids).update(status=status)
