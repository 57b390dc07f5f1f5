"""Audit entries as people read them: field labels instead of names, the name of a
related record instead of its id, choice labels, Nairobi times instead of stored UTC
ISO strings, yes/no. Used by the history block and the customer timeline."""

import datetime

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import dateformat, timezone
from django.utils.text import capfirst

from ispops.audit.registry import SECRET_PLACEHOLDER

EMPTY = "—"


def readable(entries, known=()) -> list:
    """Set `entry.readable` on each AuditEntry: [{"label", "old", "new"}], `old` None
    for a create. Related records are fetched once per model for all the entries,
    except those among `known` (records the page has loaded already)."""
    entries = list(entries)
    names: dict[type, dict] = {}
    for obj in known:
        names.setdefault(type(obj), {})[obj.pk] = str(obj)
    wanted: dict[type, set] = {}
    for entry in entries:
        model = _model(entry.model)
        for name, change in (entry.changes or {}).items():
            field = _field(model, name)
            if isinstance(field, models.ForeignKey):
                for value in _values(entry, change):
                    pk = int(value) if str(value).isdecimal() else None
                    if pk is not None and pk not in names.get(field.related_model, {}):
                        wanted.setdefault(field.related_model, set()).add(pk)
    for related, ids in wanted.items():
        found = related._default_manager.in_bulk(ids)
        names.setdefault(related, {}).update({pk: str(obj) for pk, obj in found.items()})
    for entry in entries:
        model = _model(entry.model)
        rows = []
        for name, change in (entry.changes or {}).items():
            field = _field(model, name)
            label = capfirst(str(field.verbose_name)) if field is not None else name
            if entry.action == "update" and isinstance(change, list) and len(change) == 2:
                old, new = (_show(field, value, names) for value in change)
            else:
                old, new = None, _show(field, change, names)
            rows.append({"label": label, "old": old, "new": new})
        entry.readable = rows
    return entries


def loaded_relations(*objs):
    """The related records already loaded on `objs` (select_related or used), to pass
    to readable() as `known`."""
    for obj in objs:
        for field in obj._meta.concrete_fields:
            if field.is_relation and field.is_cached(obj):
                related = field.get_cached_value(obj)
                if related is not None:
                    yield related


def _values(entry, change):
    if entry.action == "update" and isinstance(change, list) and len(change) == 2:
        return change
    return [change]


def _model(label: str):
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _field(model, name: str):
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _show(field, value, names) -> str:
    if value == SECRET_PLACEHOLDER:
        return value
    if value is None or value == "" or value == []:
        return EMPTY
    if isinstance(field, models.ForeignKey):
        try:
            return names.get(field.related_model, {}).get(int(value)) or f"#{value} (removed)"
        except (TypeError, ValueError):
            return str(value)
    if isinstance(field, models.BooleanField) or isinstance(value, bool):
        return "yes" if value else "no"
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, models.DateTimeField) and isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return value
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, datetime.UTC)
        return dateformat.format(timezone.localtime(moment), "j M Y H:i")
    if isinstance(field, models.DateField) and isinstance(value, str):
        try:
            return dateformat.format(datetime.date.fromisoformat(value), "j M Y")
        except ValueError:
            return value
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or EMPTY
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or EMPTY
    return str(value)
