"""One row per create, update or delete of an audited record: who, when, what changed."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntryQuerySet(models.QuerySet):
    def for_object(self, obj):
        return self.filter(model=obj._meta.label_lower, object_id=str(obj.pk)).select_related(
            "actor"
        )


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DELETE = "delete", "Deleted"

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept even if the user is later deleted, and names the system job when no user acted.
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=8, choices=Action.choices)
    # "app_label.model": a label rather than a ContentType key, because content type ids
    # differ from one schema to another and a cached id would point into the wrong one.
    model = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    # {"field": [old, new]}; secrets appear as "(changed)", never their value.
    changes = models.JSONField(default=dict)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        # A record's page lists its history newest first.
        indexes = [models.Index(fields=["model", "object_id", "-at"], name="audit_object_at")]

    def __str__(self):
        return f"{self.actor_label} {self.action} {self.object_repr}"
