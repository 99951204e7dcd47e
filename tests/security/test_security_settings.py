"""Settings -> Security: who edits which level, validation, confirmation, audit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from security.models import AllowedNetwork, AuditEvent, SecurityPolicy
from tests.conftest import work_in

ENTITY_URL = "/settings/security/"
GROUP_URL = "/settings/security/multi-level/"


def entity_form(**overrides):
    data = {
        "password_max_age_days": "",
        "inactivity_limit_months": "",
        "ip_code_recipient": "admins",
        "interactive_link_days": "30",
        "document_link_days": "90",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MAIN_ADMIN])
def test_admins_open_the_entity_settings(world, client, role):
    response = work_in(client, world.users[role], world.a).get(ENTITY_URL)
    assert response.status_code == 200
    assert "Force a password change every (days)" in response.content.decode()


@pytest.mark.parametrize(
    "role", [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]
)
def test_staff_cannot_open_security_settings(world, client, role):
    work_in(client, world.users[role], world.a)
    assert client.get(ENTITY_URL).status_code == 403
    assert client.get(GROUP_URL).status_code == 403
    assert client.post(ENTITY_URL, entity_form(password_max_age_days="1")).status_code == 403
    assert not SecurityPolicy.objects.exists()


def test_only_the_main_admin_of_the_access_edits_the_multi_level_policy(world, client):
    assert work_in(client, world.users[Role.ADMIN], world.a).get(GROUP_URL).status_code == 403
    client.logout()
    page = work_in(client, world.main_admin, world.a).get(GROUP_URL)
    assert page.status_code == 200
    assert "every user of every entity in Acme Group" in page.content.decode()


def test_an_entity_without_an_access_has_no_multi_level_page(world, client):
    assert work_in(client, world.outsider, world.c).get(GROUP_URL).status_code == 403


def test_the_save_message_says_each_new_value(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    on = client.post(
        ENTITY_URL,
        entity_form(
            password_max_age_days="45",
            ip_code_recipient="user",
            restricted_roles=["collector", "sales"],
        ),
        follow=True,
    )
    assert (
        "Saved the entity-level policy. Password maximum age (days): 45; Validation codes go "
        "to: the user concerned; Roles restricted to their customers: Collector, Sales."
    ) in on.content.decode()
    off = client.post(ENTITY_URL, entity_form(restricted_roles=None), follow=True)
    assert (
        "Saved the entity-level policy. Password maximum age (days): not set; Validation codes "
        "go to: the administrators; Roles restricted to their customers: none."
    ) in off.content.decode()


def test_an_entity_admin_sets_how_long_links_to_customers_work(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    page = client.get(ENTITY_URL).content.decode()
    assert "Links in interactive emails are valid for (days)" in page
    assert "Links to documents are valid for (days)" in page
    assert 'name="document_link_days" value="90" min="1" max="365"' in page
    saved = client.post(
        ENTITY_URL, entity_form(interactive_link_days="7", document_link_days="14"), follow=True
    )
    assert (
        "Saved the entity-level policy. Links in interactive emails valid (days): 7; "
        "Links to documents valid (days): 14."
    ) in saved.content.decode()
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert (policy.interactive_link_days, policy.document_link_days) == (7, 14)
    for bad, message in (
        ("0", "greater than or equal to 1"),
        ("366", "less than or equal to 365"),
        ("", "required"),
    ):
        refused = client.post(ENTITY_URL, entity_form(document_link_days=bad))
        assert refused.status_code == 200
        assert message in refused.content.decode()
    assert SecurityPolicy.objects.get(entity=world.a).document_link_days == 14
    # The multi-level page has no such setting: links are an entity's business.
    work_in(client, world.main_admin, world.a)
    assert "Links to documents" not in client.get(GROUP_URL).content.decode()


def test_a_save_is_audited_with_old_and_new_values(world, client):
    admin = world.users[Role.ADMIN]
    work_in(client, admin, world.a)
    response = client.post(
        ENTITY_URL,
        entity_form(password_max_age_days="45", inactivity_limit_months="9"),
        follow=True,
    )
    assert "Saved the entity-level policy" in response.content.decode()
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert (policy.password_max_age_days, policy.inactivity_limit_months) == (45, 9)
    event = AuditEvent.objects.get(action="security.settings.changed")
    assert (event.actor, event.entity) == (admin, world.a)
    assert event.data == {
        "level": "entity-level",
        "changes": {
            "password_max_age_days": [None, 45],
            "inactivity_limit_months": [None, 9],
        },
    }


def test_saving_the_same_values_changes_and_audits_nothing(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(ENTITY_URL, entity_form(), follow=True)
    assert "Nothing changed." in response.content.decode()
    assert not AuditEvent.objects.filter(action="security.settings.changed").exists()


def test_a_multi_level_save_is_audited_on_the_access(world, client):
    work_in(client, world.main_admin, world.a)
    client.post(GROUP_URL, entity_form(inactivity_limit_months="12"))
    event = AuditEvent.objects.get(action="security.settings.changed")
    assert event.entity_group == world.group and event.entity is None
    assert event.data["changes"] == {"inactivity_limit_months": [None, 12]}


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("password_max_age_days", "thirty", "Enter a whole number."),
        ("password_max_age_days", "0", "Ensure this value is greater than or equal to 1."),
        ("inactivity_limit_months", "500", "Ensure this value is less than or equal to 120."),
        ("inactivity_limit_months", "-3", "Ensure this value is greater than or equal to 1."),
        ("inactivity_limit_months", "6.5", "Enter a whole number."),
    ],
)
def test_bad_values_are_explained_and_nothing_is_saved(world, client, field, value, message):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(ENTITY_URL, entity_form(**{field: value}))
    assert response.status_code == 200  # the form again, with its errors
    assert message in response.content.decode()
    assert not AuditEvent.objects.filter(action="security.settings.changed").exists()


def test_an_entity_cannot_save_looser_than_the_multi_level(world, client):
    SecurityPolicy.objects.create(
        group=world.group, password_max_age_days=30, inactivity_limit_months=6
    )
    work_in(client, world.users[Role.ADMIN], world.a)
    page = client.get(ENTITY_URL).content.decode()
    assert "Multi-level (Acme Group): 30." in page
    assert "Multi-level (Acme Group): 6." in page
    response = client.post(
        ENTITY_URL, entity_form(password_max_age_days="60", inactivity_limit_months="12")
    )
    content = response.content.decode()
    assert response.status_code == 200  # the form again, with its errors
    assert "The multi-level policy sets 30; this entity can only set 30 or less." in content
    assert "The multi-level policy sets 6; this entity can only set 6 or less." in content
    assert not SecurityPolicy.objects.filter(entity=world.a, password_max_age_days=60).exists()
    ok = client.post(
        ENTITY_URL, entity_form(password_max_age_days="20", inactivity_limit_months="6")
    )
    assert ok.status_code == 302


@pytest.mark.parametrize("group_allowlist_on", [True, False])
def test_an_entity_cannot_send_codes_to_the_user_when_the_multi_level_list_says_admins(
    world, client, group_allowlist_on
):
    group_policy = SecurityPolicy.objects.create(
        group=world.group, ip_allowlist_enabled=group_allowlist_on, ip_code_recipient="admins"
    )
    AllowedNetwork.objects.create(policy=group_policy, network="127.0.0.0/8", label="Test")
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(ENTITY_URL, entity_form(ip_code_recipient="user"))
    refused = "The multi-level allowlist sends validation codes to the administrators"
    if group_allowlist_on:
        assert response.status_code == 200
        assert refused in response.content.decode()
        assert not SecurityPolicy.objects.filter(entity=world.a, ip_code_recipient="user").exists()
    else:  # the multi-level list is off: the entity's own list decides for itself
        assert response.status_code == 302
        assert SecurityPolicy.objects.get(entity=world.a).ip_code_recipient == "user"


def test_a_tightening_that_hits_users_asks_to_confirm_first(world, client):
    old = timezone.now() - timedelta(days=45)
    User.objects.filter(pk__in=[world.users[Role.GUEST].pk, world.users[Role.SALES].pk]).update(
        password_changed_at=old
    )
    User.objects.filter(pk=world.users[Role.COLLECTOR].pk).update(
        last_active_at=timezone.now() - timedelta(days=100)
    )
    User.objects.filter(pk=world.outsider.pk).update(password_changed_at=old)  # not in a
    work_in(client, world.users[Role.ADMIN], world.a)
    form = entity_form(password_max_age_days="30", inactivity_limit_months="3")

    preview = client.post(ENTITY_URL, form)
    content = preview.content.decode()
    assert "2 users must change their password at their next sign-in." in content
    assert "1 user would be deactivated tonight." in content
    assert not SecurityPolicy.objects.filter(entity=world.a).exclude(password_max_age_days=None)

    confirmed = client.post(ENTITY_URL, {**form, "confirmed": "yes"})
    assert confirmed.status_code == 302
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert (policy.password_max_age_days, policy.inactivity_limit_months) == (30, 3)


def test_a_tightening_that_hits_nobody_saves_at_once(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.post(ENTITY_URL, entity_form(password_max_age_days="30")).status_code == 302


def test_the_explainer_says_which_level_set_each_rule(world, client):
    SecurityPolicy.objects.create(
        group=world.group, password_max_age_days=60, inactivity_limit_months=12
    )
    SecurityPolicy.objects.create(entity=world.a, password_max_age_days=30)
    guest = world.users[Role.GUEST]
    work_in(client, world.users[Role.ADMIN], world.a)
    content = client.get(f"/settings/users/{guest.pk}/rules/").content.decode()
    assert "Acme Norge AS (entity-level)" in content  # set the 30 days
    assert "Acme Group (multi-level)" in content  # set the 12 months


def test_the_settings_page_costs_a_fixed_number_of_queries(
    world, client, django_assert_max_num_queries
):
    SecurityPolicy.objects.create(group=world.group, password_max_age_days=60)
    work_in(client, world.users[Role.ADMIN], world.a)
    client.get(ENTITY_URL)  # creates the entity's policy row on first use
    with django_assert_max_num_queries(10):
        assert client.get(ENTITY_URL).status_code == 200


def test_the_explainer_says_when_no_level_sets_a_rule(world, client):
    guest = world.users[Role.GUEST]
    work_in(client, world.users[Role.ADMIN], world.a)
    content = client.get(f"/settings/users/{guest.pk}/rules/").content.decode()
    assert content.count("No level sets it") == 3  # age, inactivity, 2FA
    assert "Never" in content  # no expiry, no deactivation


def test_the_users_page_marks_passwords_older_than_the_rule_that_applies(world, client):
    """The entity says 30 days; the multi-level policy, which also reaches the main admin
    through the access, says 60."""
    SecurityPolicy.objects.create(entity=world.a, password_max_age_days=30)
    SecurityPolicy.objects.create(group=world.group, password_max_age_days=60)
    now = timezone.now()
    User.objects.filter(pk=world.users[Role.GUEST].pk).update(
        password_changed_at=now - timedelta(days=45)
    )
    User.objects.filter(pk=world.users[Role.SALES].pk).update(
        password_changed_at=now - timedelta(days=20)
    )
    User.objects.filter(pk=world.main_admin.pk).update(password_changed_at=now - timedelta(days=45))
    page = work_in(client, world.users[Role.ADMIN], world.a).get("/settings/users/")
    content = page.content.decode()
    rows = {
        email: row
        for row in content.split("<tr>")[2:]
        for email in [
            world.users[Role.GUEST].email,
            world.users[Role.SALES].email,
            world.main_admin.email,
        ]
        if email in row
    }
    assert "Password expired" in rows[world.users[Role.GUEST].email]
    assert "Password expired" not in rows[world.users[Role.SALES].email]
    # The main admin works in b too, which has no entity rule; the 30 days of a still reach them.
    assert "Password expired" in rows[world.main_admin.email]
