"""Writes to security settings (the policy of a level and its allowlist): every change is
audited, a policy change with its old and new values."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction

from security.audit import record
from security.inactivity import inactivity_cutoff
from security.models import AllowedNetwork, EncryptedTOTPDevice, SecurityPolicy
from security.phones import mask_phone
from security.selectors import users_in_scope


@dataclass(frozen=True)
class Impact:
    """Who a tightening would hit, shown before the admin confirms."""

    must_change_password: int = 0
    would_be_deactivated: int = 0
    must_set_up_2fa: int = 0

    def __bool__(self):
        return bool(self.must_change_password or self.would_be_deactivated or self.must_set_up_2fa)


def _tightens(old, new):
    return new is not None and (old is None or new < old)


def tightening_impact(policy, values, now):
    scope = users_in_scope(entity=policy.entity, group=policy.group).filter(is_active=True)
    password_days = values.get("password_max_age_days")
    months = values.get("inactivity_limit_months")
    must_change = deactivated = without_2fa = 0
    if values.get("require_2fa") and not policy.require_2fa:
        with_device = EncryptedTOTPDevice.objects.filter(confirmed=True).values("user_id")
        without_2fa = scope.exclude(pk__in=with_device).count()
    if _tightens(policy.password_max_age_days, password_days):
        must_change = scope.filter(
            password_changed_at__lt=now - timedelta(days=password_days)
        ).count()
    if _tightens(policy.inactivity_limit_months, months):
        deactivated = scope.filter(last_active_at__lt=inactivity_cutoff(months, now)).count()
    return Impact(must_change, deactivated, without_2fa)


def _jsonable(value):
    return sorted(value) if isinstance(value, (list, tuple, set)) else value


def update_policy(policy_id, values, *, actor, now, request=None):
    """Apply `values` (field -> new value) to one policy; returns {field: [old, new]}."""
    with transaction.atomic():
        policy = (
            SecurityPolicy.objects.select_for_update(of=("self",))
            .select_related("entity", "group")
            .get(pk=policy_id)
        )
        changes = {}
        for field, new in values.items():
            old = getattr(policy, field)
            if _jsonable(old) != _jsonable(new):
                changes[field] = [_jsonable(old), _jsonable(new)]
                setattr(policy, field, new)
        if not changes:
            return {}
        policy.updated_at = now
        policy.save()
        record(
            "security.settings.changed",
            actor=actor,
            entity=policy.entity,
            group=policy.group,
            target=policy,
            request=request,
            now=now,
            data={"level": policy.level, "changes": changes},
        )
    return changes


def add_network(policy, network, label, *, actor, now, request=None):
    """Add `network` (normalised CIDR) for everyone to `policy`'s allowlist; returns the
    entry, or None when the list already has it for everyone."""
    with transaction.atomic():
        # Under the policy row's lock, two admins adding the same network add it once.
        SecurityPolicy.objects.select_for_update().get(pk=policy.pk)
        if policy.networks.filter(network=network, for_user__isnull=True).exists():
            return None
        entry = AllowedNetwork.objects.create(
            policy=policy, network=network, label=label, created_by=actor, created_at=now
        )
        record(
            "security.allowlist.added",
            actor=actor,
            entity=policy.entity,
            group=policy.group,
            target=entry,
            request=request,
            now=now,
            data={"level": policy.level, "network": network, "label": label},
        )
    return entry


def remove_network(entry, *, actor, now, request=None):
    """Remove one allowlist entry of a level."""
    policy = entry.policy
    with transaction.atomic():
        entry.delete()
        record(
            "security.allowlist.removed",
            actor=actor,
            entity=policy.entity,
            group=policy.group,
            request=request,
            now=now,
            data={"level": policy.level, "network": entry.network, "label": entry.label},
        )


def set_phone(user, phone, *, request):
    """Save the user's mobile number (where validation codes go); audited with both numbers
    masked. Returns whether it changed."""
    old = user.phone
    if old == phone:
        return False
    with transaction.atomic():
        user.phone = phone
        user.save(update_fields=["phone"])
        record(
            "account.phone.changed",
            actor=user,
            request=request,
            data={"old": mask_phone(old) if old else "", "new": mask_phone(phone) if phone else ""},
        )
    return True
