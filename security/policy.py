"""What security rules apply to a user: the stricter of every level that reaches them.

Pure functions over plain values, so each rule is unit-tested row by row and a request
computes the policy once (`load_effective_policy`, one query).

Every rule is declared once, in `RULES` below, with how the values of several levels
combine into the one that applies (`Combine`):

- SHORTEST (password maximum age, inactivity limit): the shortest set value; none set,
  no limit (passwords never expire, users are never deactivated);
- ANY_TRUE (two-factor authentication, the IP allowlist): on if any level turns it on
  (and an address must pass every allowlist that is on, see `security.allowlist`);
- ADMINS_IF_ANY (validation-code recipient): the administrators if any level says so (a
  user cannot approve their own address), else the user;
- ENTITY_ONLY (countries of the numbers that receive codes, role restrictions, validity
  of links to customers): each entity sets its own; the multi-level has no such setting.

A user reaches a level when they work in an entity (entity-level) or in any entity of a
multi-entity access (multi-level). Password age, inactivity and 2FA belong to the account
(`account_wide`), so every entity the user reaches counts, not only the one they are
working in.

Adding a rule: add one `PolicyRule` to `RULES`, and the field of the same name to
`security.models.SecurityPolicy` (its question, help text, default and bounds, which the
settings forms show) with its migration. Everything else derives from `RULES`: the
values a level sets (`LevelPolicy`), the rules that apply (`EffectivePolicy`,
`effective_policy`), the fields of each level's settings form, the labels of the save
message and of the policy explainer, and the refusal of an entity value looser than the
multi-level one.
"""

import dataclasses
import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

MULTI_LEVEL = "multi-level"
ENTITY_LEVEL = "entity-level"


class Combine(StrEnum):
    """How the values of the levels reaching a user make the one rule that applies."""

    SHORTEST = "shortest"
    ANY_TRUE = "any_true"
    ADMINS_IF_ANY = "admins_if_any"
    ENTITY_ONLY = "entity_only"


@dataclass(frozen=True)
class PolicyRule:
    """One security setting. Its database column is the SecurityPolicy field named
    `field`; everything the rest of the code needs to know about it is here."""

    field: str
    # Its name in the save message ("Saved ... Password maximum age (days): 30.") and in
    # the policy explainer.
    label: str
    combine: Combine
    # A level's value until an admin changes it (the model field's default).
    default: Any = None
    # A level's value counts only while this other field of the same level is on.
    counts_while: str | None = None
    # Why an entity may not save a value looser than the multi-level one; "{inherited}"
    # is the multi-level value. None: the entity may, the multi-level value applies anyway.
    # An entity's empty field (or unticked box) is never looser: it sets nothing of its
    # own and inherits (`_is_looser`).
    looser_error: str | None = None
    # Belongs to the account: every level the user reaches counts, and the policy
    # explainer of the Users page lists it.
    account_wide: bool = False

    @property
    def levels(self):
        """The levels whose settings form edits the rule."""
        if self.combine == Combine.ENTITY_ONLY:
            return (ENTITY_LEVEL,)
        return (MULTI_LEVEL, ENTITY_LEVEL)

    @property
    def combined(self):
        """Set at both levels and combined into the rule that applies to a user."""
        return self.combine != Combine.ENTITY_ONLY


ONLY_SHORTER = (
    "The multi-level policy sets {inherited}; this entity can only set {inherited} or less."
)

RULES = (
    PolicyRule(
        "password_max_age_days",
        label="Password maximum age (days)",
        combine=Combine.SHORTEST,
        looser_error=ONLY_SHORTER,
        account_wide=True,
    ),
    PolicyRule(
        "inactivity_limit_months",
        label="Inactivity limit (months)",
        combine=Combine.SHORTEST,
        looser_error=ONLY_SHORTER,
        account_wide=True,
    ),
    PolicyRule(
        "require_2fa",
        label="Two-factor authentication required",
        combine=Combine.ANY_TRUE,
        default=False,
        # Unticked is "not required by this entity": the multi-level requirement, when
        # on, still applies (an unticked box cannot say "inherit" otherwise).
        looser_error=None,
        account_wide=True,
    ),
    PolicyRule(
        "ip_allowlist_enabled",
        label="IP allowlist",
        combine=Combine.ANY_TRUE,
        default=False,
        # An entity may turn its own list off: the multi-level list, when on, still applies.
        looser_error=None,
    ),
    PolicyRule(
        "ip_code_recipient",
        label="Validation codes go to",
        combine=Combine.ADMINS_IF_ANY,
        default="admins",
        # Only the allowlists that are on send codes.
        counts_while="ip_allowlist_enabled",
        looser_error=(
            "The multi-level allowlist sends validation codes to the administrators; "
            "this entity can only do the same."
        ),
    ),
    PolicyRule(
        # Texts cost money where they arrive (SMS pumping): each entity says where its
        # users' and administrators' numbers may be (security.sms checks it at sending).
        "sms_countries",
        label="Countries whose mobile numbers may receive codes",
        combine=Combine.ENTITY_ONLY,
    ),
    PolicyRule(
        "restricted_roles",
        label="Roles restricted to their customers",
        combine=Combine.ENTITY_ONLY,
    ),
    PolicyRule(
        "interactive_link_days",
        label="Links in interactive emails valid (days)",
        combine=Combine.ENTITY_ONLY,
    ),
    PolicyRule(
        "document_link_days",
        label="Links to documents valid (days)",
        combine=Combine.ENTITY_ONLY,
    ),
)

RULES_BY_FIELD = {rule.field: rule for rule in RULES}
# The rules both levels set, which `effective_policy` combines.
COMBINED_RULES = tuple(rule for rule in RULES if rule.combined)


def rules_at(level):
    """The rules the settings form of `level` (MULTI_LEVEL or ENTITY_LEVEL) edits."""
    return tuple(rule for rule in RULES if level in rule.levels)


def label_of(field_name):
    """A field's name as the save message and the explainer say it."""
    rule = RULES_BY_FIELD.get(field_name)
    return rule.label if rule else field_name


@dataclass(frozen=True)
class Rule:
    value: Any
    set_by: tuple[str, ...] = ()  # labels of the levels that decided the value


def combine(rule, levels):
    """The one value of `rule` that applies over `levels`, with the levels that decided
    it (the order of `levels` is the order of `set_by`)."""
    if rule.counts_while is not None:
        levels = [lv for lv in levels if getattr(lv, rule.counts_while)]
    values = [(lv.label, getattr(lv, rule.field)) for lv in levels]
    match rule.combine:
        case Combine.SHORTEST:
            set_values = [value for _, value in values if value is not None]
            if not set_values:
                return Rule(None)
            best = min(set_values)
            return Rule(best, tuple(label for label, value in values if value == best))
        case Combine.ANY_TRUE:
            deciders = tuple(label for label, value in values if value)
            return Rule(bool(deciders), deciders)
        case Combine.ADMINS_IF_ANY:
            to_admins = tuple(label for label, value in values if value == "admins")
            if to_admins:
                return Rule("admins", to_admins)
            return Rule("user", tuple(label for label, _ in values))
    raise ValueError(f"{rule.field} is set by each entity, not combined over levels.")


def _is_looser(rule, value, inherited):
    """Whether an entity's `value` of `rule` is looser than the multi-level `inherited`.
    An empty value (None) sets nothing and inherits: the multi-level value applies, as
    `combine` says, so it is never looser."""
    match rule.combine:
        case Combine.SHORTEST:
            return inherited is not None and value is not None and value > inherited
        case Combine.ANY_TRUE:
            return False  # off sets nothing of its own: the multi-level "on" still applies
        case Combine.ADMINS_IF_ANY:
            return inherited == "admins" and value == "user"
    return False


@dataclass(frozen=True)
class _Level:
    level: str  # MULTI_LEVEL or ENTITY_LEVEL
    owner: str  # the multi-entity access's or entity's name

    @property
    def label(self):
        return f"{self.owner} ({self.level})"


# LevelPolicy(level, owner, password_max_age_days=..., ...): one field per combined rule,
# defaulting to the rule's `default`.
LevelPolicy = dataclasses.make_dataclass(
    "LevelPolicy",
    [(rule.field, Any, dataclasses.field(default=rule.default)) for rule in COMBINED_RULES],
    bases=(_Level,),
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "The values one level sets, with who set them (for explanations).",
    },
)


def _effective_rules(self):
    """{field: Rule} of every combined rule, in the order of RULES."""
    return {rule.field: getattr(self, rule.field) for rule in COMBINED_RULES}


# EffectivePolicy(password_max_age_days=Rule(...), ...): one Rule per combined rule,
# defaulting to what applies when no level reaches the user.
EffectivePolicy = dataclasses.make_dataclass(
    "EffectivePolicy",
    [(rule.field, Rule, dataclasses.field(default=combine(rule, []))) for rule in COMBINED_RULES],
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "The rules that apply to a user, each with the levels that set it.",
        "rules": _effective_rules,
    },
)


def effective_policy(levels):
    """Combine the levels that reach a user into the rules that apply to them."""
    levels = sorted(levels, key=lambda lv: (lv.level != MULTI_LEVEL, lv.owner))
    return EffectivePolicy(**{rule.field: combine(rule, levels) for rule in COMBINED_RULES})


def level_values(policy):
    """A SecurityPolicy row as plain values."""
    owner = policy.group if policy.group_id else policy.entity
    return LevelPolicy(
        level=MULTI_LEVEL if policy.group_id else ENTITY_LEVEL,
        owner=owner.name,
        **{rule.field: getattr(policy, rule.field) for rule in COMBINED_RULES},
    )


def inherited_rule(policy, field_name):
    """What the multi-level `policy` imposes on an entity for `field_name`: its value,
    except while the field its rule `counts_while` is off (the code recipient binds only
    while the multi-level allowlist is on, as in `effective_policy`): then None."""
    rule = RULES_BY_FIELD.get(field_name)
    if rule is not None and rule.counts_while and not getattr(policy, rule.counts_while):
        return None
    return getattr(policy, field_name)


def looser_than_inherited(field_name, value, inherited):
    """Why an entity-level `value` would be looser than the multi-level `inherited` one
    (see `inherited_rule`), or None when it is allowed (the same or stricter)."""
    rule = RULES_BY_FIELD.get(field_name)
    if rule is None or rule.looser_error is None or not _is_looser(rule, value, inherited):
        return None
    return rule.looser_error.format(inherited=inherited)


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
