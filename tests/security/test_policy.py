"""The effective policy: the stricter of every level, one rule per row."""

import pytest

from security.policy import (
    ENTITY_LEVEL,
    MULTI_LEVEL,
    LevelPolicy,
    effective_policy,
    looser_than_inherited,
)


def group(**values):
    return LevelPolicy(level=MULTI_LEVEL, owner="Acme Group", **values)


def entity(name="Acme Norge AS", **values):
    return LevelPolicy(level=ENTITY_LEVEL, owner=name, **values)


@pytest.mark.parametrize(
    "levels,value,set_by",
    [
        ([], None, ()),
        ([group(), entity()], None, ()),
        ([group(password_max_age_days=30)], 30, ("Acme Group (multi-level)",)),
        ([entity(password_max_age_days=45)], 45, ("Acme Norge AS (entity-level)",)),
        (
            [group(password_max_age_days=30), entity(password_max_age_days=60)],
            30,
            ("Acme Group (multi-level)",),
        ),
        (
            [group(password_max_age_days=60), entity(password_max_age_days=30)],
            30,
            ("Acme Norge AS (entity-level)",),
        ),
        (
            [group(password_max_age_days=30), entity(password_max_age_days=30)],
            30,
            ("Acme Group (multi-level)", "Acme Norge AS (entity-level)"),
        ),
        (
            [entity("A", password_max_age_days=90), entity("B", password_max_age_days=20)],
            20,
            ("B (entity-level)",),
        ),
    ],
)
def test_password_age_is_the_shortest_set_value(levels, value, set_by):
    rule = effective_policy(levels).password_max_age_days
    assert (rule.value, rule.set_by) == (value, set_by)


@pytest.mark.parametrize(
    "levels,value",
    [
        ([], None),
        ([group(inactivity_limit_months=6)], 6),
        ([group(inactivity_limit_months=6), entity(inactivity_limit_months=3)], 3),
        ([group(inactivity_limit_months=3), entity(inactivity_limit_months=12)], 3),
        ([group(), entity(inactivity_limit_months=12)], 12),
    ],
)
def test_inactivity_limit_is_the_shortest_set_value(levels, value):
    assert effective_policy(levels).inactivity_limit_months.value == value


@pytest.mark.parametrize(
    "group_requires,entity_requires,required",
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_2fa_is_required_if_either_level_requires_it(group_requires, entity_requires, required):
    rule = effective_policy(
        [group(require_2fa=group_requires), entity(require_2fa=entity_requires)]
    ).require_2fa
    assert rule.value is required
    assert len(rule.set_by) == group_requires + entity_requires


@pytest.mark.parametrize(
    "group_on,entity_on,enabled",
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_the_allowlist_applies_if_either_level_turns_it_on(group_on, entity_on, enabled):
    rule = effective_policy(
        [group(ip_allowlist_enabled=group_on), entity(ip_allowlist_enabled=entity_on)]
    ).ip_allowlist_enabled
    assert rule.value is enabled


@pytest.mark.parametrize(
    "group_recipient,entity_recipient,recipient",
    [
        ("user", "user", "user"),
        ("admins", "user", "admins"),
        ("user", "admins", "admins"),
        ("admins", "admins", "admins"),
    ],
)
def test_codes_go_to_the_administrators_if_any_allowlist_says_so(
    group_recipient, entity_recipient, recipient
):
    levels = [
        group(ip_allowlist_enabled=True, ip_code_recipient=group_recipient),
        entity(ip_allowlist_enabled=True, ip_code_recipient=entity_recipient),
    ]
    assert effective_policy(levels).ip_code_recipient.value == recipient


def test_a_recipient_choice_of_a_level_without_allowlist_does_not_count():
    levels = [
        group(ip_allowlist_enabled=False, ip_code_recipient="admins"),
        entity(ip_allowlist_enabled=True, ip_code_recipient="user"),
    ]
    assert effective_policy(levels).ip_code_recipient.value == "user"


@pytest.mark.parametrize(
    "field,value,inherited,refused",
    [
        ("password_max_age_days", 60, 30, True),
        ("password_max_age_days", None, 30, False),  # empty inherits the 30
        ("password_max_age_days", 30, 30, False),
        ("password_max_age_days", 10, 30, False),
        ("password_max_age_days", None, None, False),
        ("inactivity_limit_months", 12, 6, True),
        ("inactivity_limit_months", 3, 6, False),
        ("require_2fa", False, True, False),  # unticked: the multi-level requirement applies
        ("require_2fa", True, True, False),
        ("require_2fa", True, False, False),
        ("ip_code_recipient", "user", "admins", True),
        ("ip_code_recipient", "admins", "admins", False),
        ("ip_code_recipient", "user", "user", False),
        ("ip_code_recipient", "user", None, False),  # the multi-level allowlist is off
    ],
)
def test_an_entity_cannot_be_looser_than_the_multi_level(field, value, inherited, refused):
    assert bool(looser_than_inherited(field, value, inherited)) is refused
