"""Entity settings under a multi-level policy: a field left empty (a box left unticked)
inherits, so saving one change never fails on fields the admin did not touch; beside each
field the form says what the multi-level policy sets and what empty means; the page
states what applies for every rule, and which level set it. A value of the entity's
own that is looser than the multi-level one is still refused."""

import re
from html import unescape

import pytest
from django_otp import DEVICE_ID_SESSION_KEY

from accounts.roles import Role
from security import twofactor
from security.models import AuditEvent, SecurityPolicy
from security.policy import ENTITY_LEVEL, rules_at
from tests.conftest import work_in

ENTITY_URL = "/settings/security/"
GROUP = "Acme Group (multi-level)"
ENTITY = "Acme Norge AS (entity-level)"


def entity_form(**overrides):
    """The entity form as a browser posts it untouched: empty numbers, unticked boxes
    (absent), the default recipient and link days."""
    data = {
        "password_max_age_days": "",
        "inactivity_limit_months": "",
        "ip_code_recipient": "admins",
        "interactive_link_days": "30",
        "document_link_days": "90",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def what_applies(response):
    """{rule label: (applies, set by)} from the page's "What applies" table."""
    content = response.content.decode()
    section = content.split('id="applies-heading"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", section)
    return {unescape(label): (unescape(value), unescape(by)) for label, value, by in rows}


@pytest.fixture
def like_nordlys(world):
    """The demo's Nordlys Group: a multi-level policy with a 90-day password age and a
    12-month inactivity limit; the entity sets neither."""
    return SecurityPolicy.objects.create(
        group=world.group, password_max_age_days=90, inactivity_limit_months=12
    )


def test_ticking_2fa_with_every_other_field_inheriting_saves(world, client, like_nordlys):
    work_in(client, world.users[Role.ADMIN], world.a)
    asked = client.post(ENTITY_URL, entity_form(require_2fa="on"))
    content = asked.content.decode()
    assert "can only set" not in content
    assert 'class="field-error"' not in content
    # Users without an authenticator would be affected: the usual confirmation.
    assert "Confirm the stricter rules" in content

    saved = client.post(ENTITY_URL, entity_form(require_2fa="on", confirmed="yes"), follow=True)
    assert "Saved the entity-level policy. Two-factor authentication required: on." in (
        saved.content.decode()
    )
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert (policy.require_2fa, policy.password_max_age_days, policy.inactivity_limit_months) == (
        True,
        None,
        None,
    )
    event = AuditEvent.objects.get(action="security.settings.changed")
    assert event.data["changes"] == {"require_2fa": [False, True]}


def test_an_empty_field_beside_an_own_looser_value_is_not_refused(world, client, like_nordlys):
    """Only the value the admin typed is refused, not the empty one beside it."""
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(ENTITY_URL, entity_form(password_max_age_days="120"))
    content = response.content.decode()
    assert "The multi-level policy sets 90; this entity can only set 90 or less." in content
    assert "this entity can only set 12 or less" not in content
    assert content.count('class="field-error"') == 1
    assert not SecurityPolicy.objects.filter(entity=world.a, password_max_age_days=120).exists()


def test_the_form_says_what_an_empty_field_inherits(world, client, like_nordlys):
    work_in(client, world.users[Role.ADMIN], world.a)
    content = unescape(client.get(ENTITY_URL).content.decode())
    assert "Multi-level (Acme Group): 90. Empty: inherits it (90 applies)" in content
    assert "Multi-level (Acme Group): 12. Empty: inherits it (12 applies)" in content
    # What empty means without an inheritance is not said where it does not hold.
    assert "Empty: passwords do not expire." not in content
    assert "Empty: never." not in content

    # Without a multi-level value, empty means no limit, as the model says.
    SecurityPolicy.objects.filter(pk=like_nordlys.pk).update(
        password_max_age_days=None, inactivity_limit_months=None
    )
    content = unescape(client.get(ENTITY_URL).content.decode())
    assert "Empty: passwords do not expire. Multi-level (Acme Group): not set." in content
    assert "Empty: inherits it" not in content


def as_admin_with_2fa(client, world):
    """The entity admin, signed in with a second factor (the multi-level policy below
    requires one)."""
    admin = world.users[Role.ADMIN]
    device = twofactor.start_enrolment(admin)
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    work_in(client, admin, world.a)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id  # past the code step
    session.save()
    return client


def test_the_page_states_what_applies_for_every_rule(world, client, like_nordlys):
    SecurityPolicy.objects.filter(pk=like_nordlys.pk).update(require_2fa=True)
    SecurityPolicy.objects.create(
        entity=world.a, password_max_age_days=30, restricted_roles=["collector"]
    )
    as_admin_with_2fa(client, world)
    applies = what_applies(client.get(ENTITY_URL))
    # A row for every rule of the entity's page, in the registry's order.
    assert list(applies) == [rule.label for rule in rules_at(ENTITY_LEVEL)]
    expected = {
        "Password maximum age (days)": ("30", ENTITY),
        "Inactivity limit (months)": ("12", GROUP),
        "Two-factor authentication required": ("on", GROUP),
        "IP allowlist": ("off", "No level sets it"),
        "Validation codes go to": ("not in use (IP allowlist: off)", "No level sets it"),
        "Roles restricted to their customers": ("Collector", ENTITY),
        "Links in interactive emails valid (days)": ("30", ENTITY),
        "Links to documents valid (days)": ("90", ENTITY),
    }
    assert {label: applies[label] for label in expected} == expected


def test_what_applies_is_what_was_saved_not_what_was_refused(world, client, like_nordlys):
    work_in(client, world.users[Role.ADMIN], world.a)
    refused = client.post(ENTITY_URL, entity_form(password_max_age_days="120"))
    assert refused.status_code == 200
    assert what_applies(refused)["Password maximum age (days)"] == ("90", GROUP)


def test_unticked_2fa_under_a_multi_level_requirement_inherits_it(world, client, like_nordlys):
    SecurityPolicy.objects.filter(pk=like_nordlys.pk).update(require_2fa=True)
    as_admin_with_2fa(client, world)
    page = client.get(ENTITY_URL)
    assert "Multi-level (Acme Group): on. It applies here whether this box is ticked or not." in (
        unescape(page.content.decode())
    )
    saved = client.post(ENTITY_URL, entity_form(password_max_age_days="30"))
    assert saved.status_code == 302
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert (policy.password_max_age_days, policy.require_2fa) == (30, False)
    applies = what_applies(client.get(ENTITY_URL))
    assert applies["Two-factor authentication required"] == ("on", GROUP)
    assert applies["Password maximum age (days)"] == ("30", ENTITY)
