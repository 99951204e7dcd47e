from django.contrib import admin

from security.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, for operators too."""

    list_display = ("created_at", "action", "actor_label", "entity", "target_label", "ip")
    list_filter = ("action",)
    search_fields = ("action", "actor_label", "target_label")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
