"""`record()`: the one way anything writes to the audit log.

Action names are dotted (`auth.login.succeeded`, `security.settings.changed`). `data`
must hold only what is safe to keep forever: never secrets, passwords or erased data.
"""

from django.utils import timezone

from security.client_ip import client_ip
from security.models import AuditEvent


def record(
    action,
    *,
    actor=None,
    entity=None,
    group=None,
    target=None,
    target_label=None,
    data=None,
    request=None,
    ip=None,
    now=None,
):
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if ip is None and request is not None:
        ip = client_ip(request)
    event = AuditEvent(
        created_at=now or timezone.now(),
        actor=actor,
        actor_label=actor.email if actor is not None else "",
        entity=entity,
        entity_group=group,
        action=action,
        data=data or {},
        ip=ip,
    )
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_label = (target_label or str(target))[:200]
    elif target_label:
        event.target_label = target_label[:200]
    event.save()
    return event


def readable(value):
    """A value of an event's details as people read it: on/off, "not set", lists joined."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(readable(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {readable(item)}" for key, item in value.items())
    return str(value)


def forget_about(target):
    """Erase the personal data the audit log holds about `target` (GDPR erasure): the
    visitors' addresses and the personal fields of events about it. The events stay."""
    about = AuditEvent.objects.filter(
        target_type=target._meta.label_lower, target_id=str(target.pk)
    )
    about.erase_visitor_addresses()
    about.erase_personal_data()
