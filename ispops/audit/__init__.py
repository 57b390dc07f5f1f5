"""Audit log: every create, update and delete of a registered model, with who did it.

An app registers its business models once (usually in AppConfig.ready):

    audit.register(Customer, exclude=["search_vector"], secret=["pppoe_password"])

From then on every save() and delete() of those models writes an AuditEntry with the
fields that changed, from what to what. The actor is the logged-in user (set by
AuditActorMiddleware) or whoever a service names with `audit.acting_as(user_or_label)`;
with neither, the entry says "system". QuerySet.update() bypasses signals, so services
that use it on audited models call `audit.record()` themselves.
"""

from ispops.audit.registry import acting_as, current_actor, describe_actor, record, register

__all__ = ["acting_as", "current_actor", "describe_actor", "record", "register"]
