"""`record()`: the one way anything writes to the audit log.

Action names are dotted (`auth.login.succeeded`, `security.settings.changed`). `data`
must hold only what is safe to keep forever: never secrets, passwords or erased data.
"""

import re

from django.utils import timezone

from security.client_ip import client_ip
from security.models import AuditEvent

# C0 and C1 control characters and DEL: a log line, a terminal or a CSV reader would act on
# them (a CR LF in a typed username forges a second line).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Any one text inside `data`, and how many items a list or object in it keeps.
MAX_DATA_TEXT = 1000
MAX_DATA_ITEMS = 200


def safe_text(value, limit):
    """`value` as the log stores it: control characters as visible \\xNN, at most `limit`
    characters (a cut text ends with …)."""
    text = CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_data(value):
    """`data` with every text made safe (keys too) and every list or object capped."""
    if isinstance(value, dict):
        items = list(value.items())[:MAX_DATA_ITEMS]
        return {safe_text(key, 100): safe_data(item) for key, item in items}
    if isinstance(value, list | tuple):
        return [safe_data(item) for item in value[:MAX_DATA_ITEMS]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return safe_text(value, MAX_DATA_TEXT)


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
        actor_label=safe_text(actor.email, 254) if actor is not None else "",
        entity=entity,
        entity_group=group,
        action=safe_text(action, 100),
        data=safe_data(data or {}),
        ip=ip,
    )
    # Labels and data may hold what a visitor typed (a username, a customer's name).
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = safe_text(target.pk, 64)
        event.target_label = safe_text(target_label or str(target), 200)
    elif target_label:
        event.target_label = safe_text(target_label, 200)
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


# Details only some viewers read. An event may name, under READER_GROUPS, the access groups
# (ids) whose members may read its restricted details: a secret's title goes no further
# than the secret does. Everyone else, and everyone for a secret's event recorded without
# that list (before it existed), reads the stand-in. The log keeps ids, not a verdict, so
# a change of membership counts at once.
READER_GROUPS = "access_groups"
RESTRICTED_DETAILS = {"title": "a secret"}


def details_for(event, reader_groups):
    """`event.data` as a viewer who is a member of the access groups `reader_groups` (ids)
    may read it, without the READER_GROUPS list: restricted details of an event that
    names reader groups, or of any secret's event, are replaced unless the viewer is in
    one of the groups named."""
    data = dict(event.data or {})
    readers = data.pop(READER_GROUPS, None)
    if readers is None and not event.action.startswith("secret."):
        return data
    if isinstance(readers, list) and set(readers) & set(reader_groups):
        return data
    for key, stand_in in RESTRICTED_DETAILS.items():
        if key in data:
            data[key] = stand_in
    return data


def forget_about(target):
    """Erase the personal data the audit log holds about `target` (GDPR erasure): the
    visitors' addresses and the personal fields of events about it. The events stay."""
    about = AuditEvent.objects.filter(
        target_type=target._meta.label_lower, target_id=str(target.pk)
    )
    about.erase_visitor_addresses()
    about.erase_personal_data()
