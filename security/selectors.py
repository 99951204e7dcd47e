"""Reads: the policies that reach a user, and the users a policy reaches."""

from django.db.models import Q

from accounts.models import Entity, GroupMembership, Membership, User
from accounts.roles import Capability, can
from accounts.tenancy import resolve_tenancy
from security.models import SecurityPolicy
from security.policy import effective_policy, is_password_expired, level_values


def policies_for_entities(entities):
    """Every SecurityPolicy row of these entities and of their multi-entity accesses."""
    entity_ids = {e.pk for e in entities}
    group_ids = {e.group_id for e in entities if e.group_id}
    if not entity_ids:
        return []
    return list(
        SecurityPolicy.objects.filter(
            Q(entity_id__in=entity_ids) | Q(group_id__in=group_ids)
        ).select_related("entity", "group")
    )


def load_policies(tenancy):
    """Every policy row reaching the user of `tenancy` (one query)."""
    return policies_for_entities([access.entity for access in tenancy.accesses])


def effective_from(policies):
    return effective_policy([level_values(p) for p in policies])


def load_effective_policy(tenancy):
    """The rules for the user of `tenancy` (one query; the tenancy is already resolved)."""
    return effective_from(load_policies(tenancy))


def tenancy_and_policies(user):
    """For code outside a request's middleware (sign-in): the user's tenancy and policy
    rows, memoised on the user object so one sign-in loads them once."""
    cached = getattr(user, "_tenancy_and_policies", None)
    if cached is None:
        tenancy = resolve_tenancy(user)
        cached = (tenancy, load_policies(tenancy))
        user._tenancy_and_policies = cached
    return cached


def effective_policy_for_user(user):
    return effective_from(tenancy_and_policies(user)[1])


def policy_for(*, entity=None, group=None):
    """The policy row of one level, created with defaults on first use."""
    if (entity is None) == (group is None):
        raise ValueError("Give exactly one of entity and group.")
    if entity is not None:
        return SecurityPolicy.objects.get_or_create(entity=entity)[0]
    return SecurityPolicy.objects.get_or_create(group=group)[0]


def users_in_scope(*, entity=None, group=None, entity_id=None, group_id=None):
    """Users a level's policy reaches: for an entity, its members and the members of its
    multi-entity access; for an access, its members and the members of its entities."""
    if entity is not None:
        entity_id, group_id = entity.pk, entity.group_id
        direct = Membership.objects.filter(entity_id=entity_id)
        through_group = GroupMembership.objects.filter(group_id=group_id) if group_id else None
    elif group is not None or group_id is not None:
        group_id = group.pk if group is not None else group_id
        direct = Membership.objects.filter(entity__group_id=group_id)
        through_group = GroupMembership.objects.filter(group_id=group_id)
    elif entity_id is not None:
        direct = Membership.objects.filter(entity_id=entity_id)
        through_group = GroupMembership.objects.filter(group__entities__id=entity_id)
    else:
        raise ValueError("Give an entity or a multi-entity access.")
    user_ids = direct.values("user_id")
    if through_group is not None:
        # One IN over a UNION: the planner uses the membership indexes. (An OR of two INs
        # scanned every user on the platform: 146 ms at 1,000,000 users, see bench/.)
        user_ids = user_ids.union(through_group.values("user_id"))
    return User.objects.filter(id__in=user_ids)


def entities_of_users(user_ids):
    """{user id: ids of every entity the user reaches}, directly or through a multi-entity
    access (three queries, whatever the number of users)."""
    reached = {pk: set() for pk in user_ids}
    for user_id, entity_id in Membership.objects.filter(user_id__in=reached).values_list(
        "user_id", "entity_id"
    ):
        reached[user_id].add(entity_id)
    by_group = {}
    for user_id, group_id in GroupMembership.objects.filter(user_id__in=reached).values_list(
        "user_id", "group_id"
    ):
        by_group.setdefault(group_id, []).append(user_id)
    for group_id, entity_id in Entity.objects.filter(group_id__in=by_group).values_list(
        "group_id", "id"
    ):
        for user_id in by_group[group_id]:
            reached[user_id].add(entity_id)
    return reached


def people_managed_by(tenancy, user_ids):
    """The ids among `user_ids` whose account the user of `tenancy` may act on (reset 2FA,
    lift a block, reactivate): those who reach no entity the actor cannot manage users
    of. An entity's admin thus cannot lower the protection of someone who also works
    elsewhere, such as the main admin of the multi-entity access."""
    managed = {a.entity.pk for a in tenancy.accesses if can(a.role, Capability.MANAGE_USERS)}
    return {pk for pk, entities in entities_of_users(user_ids).items() if entities <= managed}


def roles_in_entity(entity):
    """{user id: role} of everyone who works in `entity`; a membership of the entity wins
    over the multi-entity access (as in `accounts.tenancy.resolve_tenancy`)."""
    roles = {}
    if entity.group_id:
        roles.update(
            GroupMembership.objects.filter(group_id=entity.group_id).values_list("user_id", "role")
        )
    roles.update(Membership.objects.filter(entity=entity).values_list("user_id", "role"))
    return roles


def users_with_expired_passwords(users, now):
    """The ids of `users` whose password is older than the rule that applies to them (the
    shortest maximum age of every level reaching them; five queries for any number)."""
    reached = entities_of_users([u.pk for u in users])
    entities = list(Entity.objects.filter(pk__in=set().union(*reached.values())))
    policies = policies_for_entities(entities)
    group_of = {e.pk: e.group_id for e in entities}
    expired = set()
    for user in users:
        mine = reached.get(user.pk, set())
        groups = {group_of[e] for e in mine} - {None}
        levels = [level_values(p) for p in policies if p.entity_id in mine or p.group_id in groups]
        max_age = effective_policy(levels).password_max_age_days.value
        if is_password_expired(user.password_changed_at, max_age, now):
            expired.add(user.pk)
    return expired
