"""The append-only audit log.

Events are written only through `security.audit.record`. The log spans tenants (a failed
login for an unknown address belongs to no entity), so it is not a tenant-scoped model;
reads go through `AuditEvent.objects.visible_to(tenancy)` instead.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.roles import Capability


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit events cannot be deleted.")

    def visible_to(self, tenancy):
        """Events an admin of the current entity may see: the entity's own events, its
        members' sign-ins, and -- for main admins -- the multi-entity access's events."""
        if not tenancy.can(Capability.VIEW_AUDIT):
            return self.none()
        entity = tenancy.entity
        condition = Q(entity=entity) | self._about_members(entity.memberships.all())
        if entity.group_id is not None:
            condition |= self._about_members(entity.group.memberships.all())
            if tenancy.can(Capability.MANAGE_GROUP_SECURITY):
                condition |= Q(entity__isnull=True, entity_group_id=entity.group_id)
        return self.filter(condition)

    @staticmethod
    def _about_members(memberships):
        """Untenanted events (sign-ins) by or about the users of `memberships`."""
        user_ids = memberships.values("user_id")
        user_ids_text = memberships.annotate(
            user_id_text=Cast("user_id", models.CharField())
        ).values("user_id_text")
        return Q(entity__isnull=True, entity_group__isnull=True) & (
            Q(actor_id__in=user_ids) | Q(target_type="accounts.user", target_id__in=user_ids_text)
        )


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Kept so the log still says who acted after the user is deleted or renamed.
    actor_label = models.CharField(max_length=254, blank=True)
    entity = models.ForeignKey(
        "accounts.Entity", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    entity_group = models.ForeignKey(
        "accounts.EntityGroup",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="multi-entity access",
    )
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["entity", "-created_at"], name="audit_entity_recent"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_recent"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")

    @property
    def subject(self):
        """What the event is about, for lists: its target, or the address a failed
        sign-in tried."""
        return self.target_label or (self.data or {}).get("username", "")
