"""The machinery behind ispops.audit: model registration, the actor context, diffs."""

import contextvars
import datetime
import decimal
import uuid
from contextlib import contextmanager

from django.db.models.signals import m2m_changed, post_delete, post_init, post_save

SYSTEM = "system"
_actor: contextvars.ContextVar = contextvars.ContextVar("audit_actor", default=None)
_registry: dict[type, dict] = {}

SECRET_PLACEHOLDER = "(changed)"


@contextmanager
def acting_as(actor):
    """Attribute changes in this block to `actor`: a user, or a label like "billing run"."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor():
    return _actor.get()


def register(model, *, exclude=(), secret=()):
    """Audit every save and delete of `model`. `exclude`d fields are not recorded;
    `secret` fields are recorded as changed without their values."""
    if model in _registry:
        return
    fields = [f for f in model._meta.concrete_fields if f.name not in exclude and not f.primary_key]
    _registry[model] = {"fields": fields, "secret": set(secret)}
    uid = f"audit-{model._meta.label}"
    post_init.connect(_snapshot, sender=model, weak=False, dispatch_uid=uid)
    post_save.connect(_on_save, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(_on_delete, sender=model, weak=False, dispatch_uid=uid)
    for m2m in model._meta.many_to_many:
        if m2m.name not in exclude:
            m2m_changed.connect(
                _on_m2m,
                sender=m2m.remote_field.through,
                weak=False,
                dispatch_uid=f"{uid}-{m2m.name}",
            )


def record(obj, action, changes, *, actor=None):
    """Write one audit entry for `obj` (for changes made without save())."""
    from ispops.audit.models import AuditEntry

    user, label = describe_actor(actor if actor is not None else _actor.get())
    AuditEntry.objects.create(
        actor=user,
        actor_label=label[:200],
        action=action,
        model=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes,
    )


def describe_actor(who) -> tuple:
    """(user or None, label) for whoever acts: a user, a job's name, or nobody (system)."""
    if who is None:
        return None, SYSTEM
    if _is_user(who):
        return who, str(who.email)[:200]
    return None, str(who)[:200]


def _is_user(who) -> bool:
    return getattr(who, "is_authenticated", False) and getattr(who, "pk", None) is not None


def _values(instance) -> dict:
    config = _registry[type(instance)]
    loaded = instance.__dict__
    return {f.attname: loaded[f.attname] for f in config["fields"] if f.attname in loaded}


def _snapshot(sender, instance, **kwargs):
    instance._audit_before = _values(instance) if instance.pk is not None else {}


def _on_save(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    now = _values(instance)
    before = {} if created else getattr(instance, "_audit_before", {})
    secret = _registry[sender]["secret"]
    changes = {}
    for name, new in now.items():
        if not created and name not in before:
            continue  # deferred when loaded: nothing to compare against
        old = before.get(name)
        if created or old != new:
            if name in secret or _field_name(sender, name) in secret:
                changes[_field_name(sender, name)] = [None, SECRET_PLACEHOLDER]
            else:
                changes[_field_name(sender, name)] = [_plain(old), _plain(new)]
    instance._audit_before = now
    if created:
        # A new record lists the values it was given; empty ones say nothing.
        given = {k: v[1] for k, v in changes.items() if v[1] not in (None, "", [], {})}
        record(instance, "create", given)
    elif changes:
        record(instance, "update", changes)


def _on_delete(sender, instance, **kwargs):
    record(instance, "delete", {})


def _on_m2m(sender, instance, action, pk_set, model, reverse=False, **kwargs):
    if reverse or type(instance) not in _registry:
        return
    field = next(f for f in type(instance)._meta.many_to_many if f.remote_field.through is sender)
    if action in ("pre_add", "pre_remove", "pre_clear"):
        instance._audit_m2m_before = sorted(str(o) for o in getattr(instance, field.name).all())
    elif action in ("post_add", "post_remove", "post_clear"):
        before = getattr(instance, "_audit_m2m_before", None)
        after = sorted(str(o) for o in getattr(instance, field.name).all())
        if before is not None and before != after:
            record(instance, "update", {field.name: [before, after]})


def _field_name(model, attname: str) -> str:
    for f in model._meta.concrete_fields:
        if f.attname == attname:
            return f.name
    return attname


def _plain(value):
    """JSON-safe form of a field value."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)
