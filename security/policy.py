"""What security rules apply to a user: the stricter of every level that reaches them.

Pure functions over plain values, so each rule is unit-tested row by row and a request
computes the policy once (`load_effective_policy`, one query). The rule per field:

- password maximum age: the shortest set value (none set: passwords never expire);
- inactivity limit: the shortest set value (none set: never deactivated);
- two-factor authentication: required if any level requires it;
- IP allowlist: on if any level turns it on, and an address must pass every allowlist
  that is on;
- validation-code recipient: the administrators if any level says so (a user cannot
  approve their own address), else the user.

A user reaches a level when they work in an entity (entity-level) or in any entity of a
multi-entity access (multi-level). Password age, inactivity and 2FA belong to the account,
so every entity the user reaches counts, not only the one they are working in.
"""

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

MULTI_LEVEL = "multi-level"
ENTITY_LEVEL = "entity-level"


@dataclass(frozen=True)
class LevelPolicy:
    """The values one level sets, with who set them (for explanations)."""

    level: str  # MULTI_LEVEL or ENTITY_LEVEL
    owner: str  # the multi-entity access's or entity's name
    password_max_age_days: int | None = None
    inactivity_limit_months: int | None = None
    require_2fa: bool = False
    ip_allowlist_enabled: bool = False
    ip_code_recipient: str = "admins"

    @property
    def label(self):
        return f"{self.owner} ({self.level})"


@dataclass(frozen=True)
class Rule:
    value: Any
    set_by: tuple[str, ...] = ()  # labels of the levels that decided the value


@dataclass(frozen=True)
class EffectivePolicy:
    password_max_age_days: Rule = Rule(None)
    inactivity_limit_months: Rule = Rule(None)
    require_2fa: Rule = Rule(False)
    ip_allowlist_enabled: Rule = Rule(False)
    ip_code_recipient: Rule = Rule("user")

    def rules(self):
        return {
            "password_max_age_days": self.password_max_age_days,
            "inactivity_limit_months": self.inactivity_limit_months,
            "require_2fa": self.require_2fa,
            "ip_allowlist_enabled": self.ip_allowlist_enabled,
            "ip_code_recipient": self.ip_code_recipient,
        }


def _shortest(levels, field):
    values = [getattr(lv, field) for lv in levels if getattr(lv, field) is not None]
    if not values:
        return Rule(None)
    best = min(values)
    return Rule(best, tuple(lv.label for lv in levels if getattr(lv, field) == best))


def _any_true(levels, field):
    deciders = tuple(lv.label for lv in levels if getattr(lv, field))
    return Rule(bool(deciders), deciders)


def effective_policy(levels):
    """Combine the levels that reach a user into the rules that apply to them."""
    levels = sorted(levels, key=lambda lv: (lv.level != MULTI_LEVEL, lv.owner))
    allowlisting = [lv for lv in levels if lv.ip_allowlist_enabled]
    to_admins = tuple(lv.label for lv in allowlisting if lv.ip_code_recipient == "admins")
    if to_admins:
        recipient = Rule("admins", to_admins)
    else:
        recipient = Rule("user", tuple(lv.label for lv in allowlisting))
    return EffectivePolicy(
        password_max_age_days=_shortest(levels, "password_max_age_days"),
        inactivity_limit_months=_shortest(levels, "inactivity_limit_months"),
        require_2fa=_any_true(levels, "require_2fa"),
        ip_allowlist_enabled=_any_true(levels, "ip_allowlist_enabled"),
        ip_code_recipient=recipient,
    )


def level_values(policy):
    """A SecurityPolicy row as plain values."""
    owner = policy.group if policy.group_id else policy.entity
    return LevelPolicy(
        level=MULTI_LEVEL if policy.group_id else ENTITY_LEVEL,
        owner=owner.name,
        password_max_age_days=policy.password_max_age_days,
        inactivity_limit_months=policy.inactivity_limit_months,
        require_2fa=policy.require_2fa,
        ip_allowlist_enabled=policy.ip_allowlist_enabled,
        ip_code_recipient=policy.ip_code_recipient,
    )


def inherited_rule(policy, field):
    """What the multi-level `policy` imposes on an entity for `field`: its value, except
    that its code recipient binds only while its own allowlist is on (effective_policy
    takes recipients from the allowlists that are on)."""
    if field == "ip_code_recipient" and not policy.ip_allowlist_enabled:
        return None
    return getattr(policy, field)


def looser_than_inherited(field, value, inherited):
    """Why an entity-level `value` would be looser than the multi-level `inherited` one
    (see `inherited_rule`), or None when it is allowed (the same or stricter)."""
    if field in ("password_max_age_days", "inactivity_limit_months"):
        if inherited is not None and (value is None or value > inherited):
            return (
                f"The multi-level policy sets {inherited}; "
                f"this entity can only set {inherited} or less."
            )
    elif field == "require_2fa":
        if inherited and not value:
            return "The multi-level policy requires two-factor authentication."
    elif field == "ip_code_recipient":
        if inherited == "admins" and value == "user":
            return (
                "The multi-level allowlist sends validation codes to the administrators; "
                "this entity can only do the same."
            )
    return None


# --- Password age (pure: the middleware, the Users page and the reminder job use them) ---

# A banner warns, and the reminder job emails, this many days before a password expires.
WARNING_DAYS = 7


def password_expires_at(changed_at, max_age_days):
    if max_age_days is None:
        return None
    return changed_at + timedelta(days=max_age_days)


def is_password_expired(changed_at, max_age_days, now):
    """Expired once the time since the last change exceeds the maximum age."""
    expires = password_expires_at(changed_at, max_age_days)
    return expires is not None and now > expires


def days_left(changed_at, max_age_days, now):
    """Days until expiry, rounded up, when it is within WARNING_DAYS, else None."""
    expires = password_expires_at(changed_at, max_age_days)
    if expires is None or now > expires or expires - now > timedelta(days=WARNING_DAYS):
        return None
    return math.ceil((expires - now) / timedelta(days=1))
