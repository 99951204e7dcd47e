"""The one registry of roles and what each may do.

Views and services ask `can(role, Capability.X)`; nothing else compares role names, so
adding a role or moving a capability is a change to this file only.
"""

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    MAIN_ADMIN = "main_admin", "Main admin"
    ADMIN = "admin", "Admin"
    CREDIT_MANAGER = "credit_manager", "Credit manager"
    COLLECTOR = "collector", "Collector"
    SALES = "sales", "Sales"
    SALES_ADMIN = "sales_admin", "Sales administration"
    GUEST = "guest", "Guest"


class Capability(StrEnum):
    VIEW_CUSTOMERS = "view_customers"
    EDIT_CUSTOMERS = "edit_customers"
    VIEW_AUDIT = "view_audit"
    MANAGE_USERS = "manage_users"
    # Entity-level security settings of the current entity.
    MANAGE_ENTITY_SECURITY = "manage_entity_security"
    # Multi-level security settings; only granted through a multi-entity access membership.
    MANAGE_GROUP_SECURITY = "manage_group_security"


_STAFF = {Capability.VIEW_CUSTOMERS}
_EDITORS = _STAFF | {Capability.EDIT_CUSTOMERS}
_ADMINS = _EDITORS | {
    Capability.VIEW_AUDIT,
    Capability.MANAGE_USERS,
    Capability.MANAGE_ENTITY_SECURITY,
}

CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.MAIN_ADMIN: frozenset(_ADMINS | {Capability.MANAGE_GROUP_SECURITY}),
    Role.ADMIN: frozenset(_ADMINS),
    Role.CREDIT_MANAGER: frozenset(_EDITORS),
    Role.COLLECTOR: frozenset(_EDITORS),
    Role.SALES: frozenset(_STAFF),
    Role.SALES_ADMIN: frozenset(_EDITORS),
    Role.GUEST: frozenset(_STAFF),
}

# Roles whose customer visibility an entity may restrict, and to which customers:
# "managed" = customers whose collector the user is, "assigned" = customers assigned to them.
RESTRICTABLE_ROLES: dict[Role, str] = {
    Role.COLLECTOR: "managed",
    Role.SALES: "assigned",
    Role.SALES_ADMIN: "assigned",
    Role.GUEST: "assigned",
}


def can(role, capability: Capability) -> bool:
    """Whether `role` (a Role, its value, or None for "no role") grants `capability`."""
    if role is None:
        return False
    return capability in CAPABILITIES.get(Role(role), frozenset())
