"""What users see of each security rule derives from the one registry, `RULES`: the form
fields of each level, the labels of the save message and the explainer, how two levels
combine, and the refusal of an entity value looser than the multi-level one."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import models
from django.utils import timezone

from accounts.roles import Role
from security.models import AuditEvent, SecurityPolicy
from security.policy import (
    COMBINED_RULES,
    ENTITY_LEVEL,
    MULTI_LEVEL,
    RULES,
    Combine,
    EffectivePolicy,
    LevelPolicy,
    Rule,
    effective_policy,
    rules_at,
)
from security.selectors import policy_for
from security.services import add_network, remove_network
from security.settings_forms import EntityPolicyForm, GroupPolicyForm
from tests.conftest import work_in

ENTITY_URL = "/settings/security/"
GROUP_URL = "/settings/security/multi-level/"
BY_ID = [rule.field for rule in RULES]
COMBINED_BY_ID = [rule.field for rule in COMBINED_RULES]


def model_field(rule):
    return SecurityPolicy._meta.get_field(rule.field)


def form_data(policy, fields, **changes):
    """A level's settings form as posted: the policy's values, with `changes`."""
    data = {}
    for name in fields:
        value = changes.get(name, getattr(policy, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data


def a_new_value(rule, policy):
    """A valid value of `rule` other than `policy`'s, as the form posts it."""
    column = model_field(rule)
    if isinstance(column, models.BooleanField):
        return not getattr(policy, rule.field)
    if column.choices:
        return next(v for v, _ in column.choices if v != getattr(policy, rule.field))
    if isinstance(column, models.IntegerField):
        return 7 if getattr(policy, rule.field) != 7 else 8
    if rule.field == "restricted_roles":
        return [Role.SALES.value]
    if rule.field == "sms_countries":
        return "NO, SE" if getattr(policy, rule.field) != ["NO", "SE"] else "DK"
    raise AssertionError(f"Give {rule.field} a value to post in this test.")


# --- The registry agrees with the model -------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=BY_ID)
def test_every_rule_is_an_editable_policy_field(rule):
    assert model_field(rule).editable
    assert rule.label


@pytest.mark.parametrize("rule", COMBINED_RULES, ids=COMBINED_BY_ID)
def test_a_level_holds_the_model_default_until_changed(rule):
    assert rule.default == model_field(rule).get_default()
    level = LevelPolicy(level=ENTITY_LEVEL, owner="Acme Norge AS")
    assert getattr(level, rule.field) == rule.default


def test_a_rule_counts_only_while_a_switch_of_its_level_is_on():
    switches = {rule.field: rule for rule in COMBINED_RULES if rule.combine == Combine.ANY_TRUE}
    for rule in RULES:
        if rule.counts_while is not None:
            assert rule.counts_while in switches, rule.field


@pytest.mark.parametrize(
    "rule", [r for r in RULES if not r.combined], ids=[r.field for r in RULES if not r.combined]
)
def test_an_entity_only_rule_is_neither_inherited_nor_explained(rule):
    assert rule.levels == (ENTITY_LEVEL,)
    assert (rule.looser_error, rule.counts_while, rule.account_wide) == (None, None, False)
    assert rule.field not in EffectivePolicy().rules()


# --- Forms and pages ---------------------------------------------------------------------


def test_each_level_form_has_a_field_per_rule_it_declares():
    assert list(GroupPolicyForm().fields) == [r.field for r in RULES if MULTI_LEVEL in r.levels]
    assert list(EntityPolicyForm().fields) == [r.field for r in RULES if ENTITY_LEVEL in r.levels]


@pytest.mark.parametrize("rule", RULES, ids=BY_ID)
def test_each_settings_page_shows_the_rules_of_its_level(world, client, rule):
    work_in(client, world.main_admin, world.a)
    for level, url in ((ENTITY_LEVEL, ENTITY_URL), (MULTI_LEVEL, GROUP_URL)):
        page = client.get(url).content.decode()
        assert (f'name="{rule.field}"' in page) is (level in rule.levels), level


@pytest.mark.parametrize("level,url", [(ENTITY_LEVEL, ENTITY_URL), (MULTI_LEVEL, GROUP_URL)])
def test_the_save_message_names_every_rule_changed_by_its_label(world, client, level, url):
    work_in(client, world.main_admin, world.a)
    client.get(url)  # creates the level's policy row
    policy = policy_for(entity=world.a) if level == ENTITY_LEVEL else policy_for(group=world.group)
    rules = rules_at(level)
    data = form_data(
        policy,
        [r.field for r in rules],
        **{r.field: a_new_value(r, policy) for r in rules},
    )
    # Skip the confirmations (2FA for everyone, an allowlist without the admin's address).
    data.update(confirmed="yes", confirm_lockout="yes")
    response = client.post(url, data)
    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith(f"Saved the {level} policy. ")
    for rule in rules:
        assert f"{rule.label}: " in message, rule.field
    event = AuditEvent.objects.get(action="security.settings.changed")
    assert set(event.data["changes"]) == {r.field for r in rules}


def test_the_explainer_lists_the_account_wide_rules_by_their_labels(world, client):
    guest = world.users[Role.GUEST]
    work_in(client, world.users[Role.ADMIN], world.a)
    page = client.get(f"/settings/users/{guest.pk}/rules/").content.decode()
    for rule in RULES:
        assert (f"<td>{rule.label}</td>" in page) is rule.account_wide, rule.field


def test_the_entity_form_shows_each_multi_level_value_beside_its_field(world, client):
    SecurityPolicy.objects.create(
        group=world.group, password_max_age_days=1, ip_code_recipient="user"
    )
    work_in(client, world.users[Role.ADMIN], world.a)
    page = client.get(ENTITY_URL).content.decode()
    assert page.count("Multi-level (Acme Group): ") == len(rules_at(MULTI_LEVEL))
    # A one-day maximum age is "1", not "on" (1 == True to a dict lookup).
    assert "Multi-level (Acme Group): 1." in page
    assert "Multi-level (Acme Group): the user concerned." in page
    assert "Multi-level (Acme Group): off." in page  # 2FA, the allowlist
    assert "Multi-level (Acme Group): not set." in page  # inactivity


# --- Combining two levels, and the entity's looser values --------------------------------

# Per kind: the multi-level value, the entity value, and which of the two applies.
TWO_LEVELS = {
    Combine.SHORTEST: [
        (30, 60, "multi"),
        (60, 30, "entity"),
        (30, 30, "both"),
        (None, 45, "entity"),
    ],
    Combine.ANY_TRUE: [(True, False, "multi"), (False, True, "entity"), (True, True, "both")],
    Combine.ADMINS_IF_ANY: [("admins", "user", "multi"), ("user", "admins", "entity")],
}
GROUP_LABEL, ENTITY_LABEL = "Acme Group (multi-level)", "Acme Norge AS (entity-level)"


def two_levels(rule, group_value, entity_value):
    switches = {rule.counts_while: True} if rule.counts_while else {}
    return [
        LevelPolicy(level=MULTI_LEVEL, owner="Acme Group", **switches, **{rule.field: group_value}),
        LevelPolicy(
            level=ENTITY_LEVEL, owner="Acme Norge AS", **switches, **{rule.field: entity_value}
        ),
    ]


@pytest.mark.parametrize(
    "rule,group_value,entity_value,winner",
    [(rule, *case) for rule in COMBINED_RULES for case in TWO_LEVELS[rule.combine]],
)
def test_the_effective_policy_combines_each_rule_as_declared(
    rule, group_value, entity_value, winner
):
    value = {"multi": group_value, "entity": entity_value, "both": group_value}[winner]
    set_by = {
        "multi": (GROUP_LABEL,),
        "entity": (ENTITY_LABEL,),
        "both": (GROUP_LABEL, ENTITY_LABEL),
    }[winner]
    levels = two_levels(rule, group_value, entity_value)
    # Given in either order, the levels are explained multi-level first.
    for given in (levels, levels[::-1]):
        assert getattr(effective_policy(given), rule.field) == Rule(value, set_by)


def test_with_no_level_each_rule_has_its_unset_value():
    assert effective_policy([]) == EffectivePolicy()
    assert EffectivePolicy().rules() == {
        "password_max_age_days": Rule(None),
        "inactivity_limit_months": Rule(None),
        "require_2fa": Rule(False),
        "ip_allowlist_enabled": Rule(False),
        "ip_code_recipient": Rule("user"),
    }


# Per kind: a strict multi-level value, and an entity value looser than it (as posted).
STRICT_AND_LOOSER = {
    Combine.SHORTEST: (30, 60),
    Combine.ANY_TRUE: (True, False),
    Combine.ADMINS_IF_ANY: ("admins", "user"),
}


@pytest.mark.parametrize("rule", COMBINED_RULES, ids=COMBINED_BY_ID)
def test_an_entity_form_refuses_a_looser_value_where_the_rule_says_so(world, rule):
    strict, looser = STRICT_AND_LOOSER[rule.combine]
    switches = {rule.counts_while: True} if rule.counts_while else {}
    inherited = SecurityPolicy.objects.create(group=world.group, **switches, **{rule.field: strict})
    policy = policy_for(entity=world.a)
    data = form_data(policy, [r.field for r in rules_at(ENTITY_LEVEL)], **{rule.field: looser})
    form = EntityPolicyForm(data, instance=policy, inherited=inherited)
    form.is_valid()
    if rule.looser_error is None:  # the multi-level value applies anyway
        assert rule.field not in form.errors
    else:
        assert form.errors[rule.field] == [rule.looser_error.format(inherited=strict)]
    # The same value as the multi-level one is always allowed.
    same = form_data(policy, [r.field for r in rules_at(ENTITY_LEVEL)], **{rule.field: strict})
    assert EntityPolicyForm(same, instance=policy, inherited=inherited).is_valid()


# --- The allowlist's writes --------------------------------------------------------------


def test_adding_and_removing_a_network_is_audited_at_the_time_given(world):
    admin = world.users[Role.ADMIN]
    policy = policy_for(entity=world.a)
    now = timezone.now() - timedelta(hours=1)
    entry = add_network(policy, "203.0.113.0/24", "Office", actor=admin, now=now)
    assert (entry.network, entry.label, entry.created_by, entry.created_at) == (
        "203.0.113.0/24",
        "Office",
        admin,
        now,
    )
    assert add_network(policy, "203.0.113.0/24", "Again", actor=admin, now=now) is None
    later = now + timedelta(minutes=5)
    remove_network(entry, actor=admin, now=later)
    assert not policy.networks.exists()
    events = AuditEvent.objects.filter(action__startswith="security.allowlist").order_by("pk")
    assert [(e.action, e.created_at, e.actor, e.entity) for e in events] == [
        ("security.allowlist.added", now, admin, world.a),
        ("security.allowlist.removed", later, admin, world.a),
    ]
    assert events[1].data == {
        "level": "entity-level",
        "network": "203.0.113.0/24",
        "label": "Office",
    }
