"""Append-only, hash-chained audit events, and the runs that verify the chain.

The database refuses UPDATE, DELETE and TRUNCATE of audit events (migrations 0002 and 0004); the model
refuses them too, so a mistake fails with a clear message before it reaches the trigger.
"""

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone

HASH_VERSION = 2  # what audit_record writes; 1 = rows written before object_repr and ip normalising were hashed


class AuditEventImmutable(Exception):
    pass


class AuditEvent(models.Model):
    occurred_at = models.DateTimeField(default=timezone.now)
    # Plain ids without database constraints: deleting a user or team must never touch the log.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    actor_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=80)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    hash_version = models.PositiveSmallIntegerField(default=HASH_VERSION)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["team", "-occurred_at"], name="audit_team_time_idx"),
            models.Index(fields=["actor_user", "-occurred_at"], name="audit_actor_time_idx"),
            models.Index(fields=["action"], name="audit_action_idx"),
            models.Index(fields=["-occurred_at"], name="audit_time_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditEventImmutable("Audit events are append-only: an event cannot be changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEventImmutable("Audit events are append-only: an event cannot be deleted.")


class VerificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"  # the run itself failed (e.g. the database went away), not the chain


class ChainVerification(models.Model):
    """One run of the chain check (from the audit page or the nightly schedule), with its progress."""

    STALLED_AFTER = dt.timedelta(hours=1)

    status = models.CharField(max_length=16, choices=VerificationStatus.choices, default=VerificationStatus.QUEUED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    intact = models.BooleanField(null=True)  # None until done
    first_broken_id = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    head_id = models.BigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"chain verification #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (VerificationStatus.QUEUED, VerificationStatus.RUNNING) and not self.is_stalled

    @property
    def is_stalled(self) -> bool:
        """Queued or running for over an hour: the worker died or never picked it up."""
        return (self.status in (VerificationStatus.QUEUED, VerificationStatus.RUNNING)
                and self.created_at < timezone.now() - self.STALLED_AFTER)
