"""The tenancy choke point: which entity a request works in, and how tenant data is scoped.

The current entity is resolved once per request (`TenantMiddleware`), then every
tenant-owned model (`TenantManager`) is filtered to it by django-scopes. Outside a scope an
query of tenant data raises `ScopeError` -- it fails closed -- unless the code is
explicitly marked as system code with `system_code()` (periodic jobs, management commands).
"""

from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db.models import BigIntegerField, Value
from django.db.models.functions import Cast
from django_scopes import ScopedManager, scope, scopes_disabled

from accounts.models import Entity, GroupMembership, Membership
from accounts.roles import Capability, Role, can

SESSION_ENTITY_KEY = "tenancy.entity_id"


def TenantManager(**kwargs):  # noqa: N802 -- mirrors django-scopes' factory name
    """The default manager for every model with an `entity` foreign key."""
    return ScopedManager(entity="entity", **kwargs)


@contextmanager
def tenant_scope(entity):
    """Scope tenant queries to one entity. Refuses "no entity": django-scopes treats a
    None scope value as "do not filter", which would fail open."""
    if entity is None or getattr(entity, "pk", entity) is None:
        raise ValueError("tenant_scope needs an entity; use system_code() for global work.")
    with scope(entity=bigint(getattr(entity, "pk", entity))):
        yield


def bigint(value):
    """`value` typed as the bigint columns it is compared with. Django sends a plain
    integer, which btree_gin's operator classes cannot compare with a bigint: the
    customer search's index on (entity, collector, name words) needs this to use its
    entity and collector columns (customers migration 0004)."""
    return Cast(Value(value), BigIntegerField())


def system_code():
    """Mark code that legitimately works across entities (jobs, commands, migrations)."""
    return scopes_disabled()


@dataclass(frozen=True)
class Access:
    """How one user reaches one entity."""

    entity: Entity
    role: Role
    via: str  # "entity" (a membership of the entity) or "group" (a multi-entity access)


@dataclass
class Tenancy:
    """Everything about the request's tenant, computed once per request."""

    accesses: list[Access] = field(default_factory=list)
    current: Access | None = None
    # The user's role in the current entity's multi-entity access, if they belong to it.
    group_role: Role | None = None

    @property
    def entity(self):
        return self.current.entity if self.current else None

    @property
    def role(self):
        return self.current.role if self.current else None

    @property
    def group(self):
        return self.entity.group if self.entity else None

    def can(self, capability):
        if capability == Capability.MANAGE_GROUP_SECURITY:
            # Multi-level settings are only reachable through the multi-entity access.
            return can(self.group_role, capability)
        return can(self.role, capability)


def parse_entity_id(value):
    """An entity id from a session or form, or None when it is not a positive integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if 0 < number < 2**63 else None
    return None


def resolve_tenancy(user, requested_entity_id=None):
    """Every entity `user` reaches and their role there; pick the requested one if allowed.

    A membership of the entity itself is more specific than a multi-entity access and
    wins when both exist. Three queries at most, whatever the number of entities.
    """
    if not user.is_authenticated:
        return Tenancy()
    accesses = {}
    group_roles = {}
    group_memberships = list(GroupMembership.objects.filter(user=user).select_related("group"))
    if group_memberships:
        group_roles = {m.group_id: Role(m.role) for m in group_memberships}
        for entity in Entity.objects.filter(group_id__in=group_roles).select_related("group"):
            accesses[entity.pk] = Access(entity, group_roles[entity.group_id], "group")
    for membership in Membership.objects.filter(user=user).select_related("entity__group"):
        accesses[membership.entity_id] = Access(membership.entity, Role(membership.role), "entity")
    ordered = sorted(accesses.values(), key=lambda a: (a.entity.name.lower(), a.entity.pk))
    current = accesses.get(parse_entity_id(requested_entity_id))
    if current is None and ordered:
        current = ordered[0]
    group_role = group_roles.get(current.entity.group_id) if current else None
    return Tenancy(accesses=ordered, current=current, group_role=group_role)
