"""Settings -> Privacy: the privacy policy's address and version, and the data
processors (added and removed, audited); admins only, and only their own entity's."""

from datetime import date

import pytest

from accounts.roles import Role
from accounts.tenancy import system_code
from consent.models import (
    DataProcessor,
    PrivacySettings,
)
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import (
    add_processor,
    set_privacy,
)

ADMINS = [Role.ADMIN, Role.MAIN_ADMIN]
STAFF = [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]


# --- Privacy settings --------------------------------------------------------------------------


PRIVACY_URL = "/settings/privacy/"


@pytest.mark.parametrize("role", ADMINS)
def test_admins_set_the_privacy_policy(world, client, role):
    admin = world.users[role]
    work_in(client, admin, world.a)
    assert client.get(PRIVACY_URL).status_code == 200

    page = client.post(
        PRIVACY_URL,
        {"policy_url": "https://acme.example/privacy", "policy_version": "2026-03"},
        follow=True,
    )

    assert "The privacy settings were saved." in page.content.decode()
    with system_code():
        privacy = PrivacySettings.objects.get(entity=world.a)
    assert (privacy.policy_url, privacy.policy_version) == (
        "https://acme.example/privacy",
        "2026-03",
    )
    event = AuditEvent.objects.get(action="privacy.settings.changed")
    assert (event.actor, event.entity) == (admin, world.a)
    assert event.data == {
        "changes": {
            "policy_url": ["", "https://acme.example/privacy"],
            "policy_version": ["", "2026-03"],
        }
    }


def test_an_invalid_policy_url_is_explained_and_not_saved(world, client):
    set_privacy(world.a)
    work_in(client, world.users[Role.ADMIN], world.a)

    page = client.post(PRIVACY_URL, {"policy_url": "not a url", "policy_version": "v2"})

    assert page.status_code == 200
    assert "Enter a valid URL." in page.content.decode()
    with system_code():
        privacy = PrivacySettings.objects.get(entity=world.a)
    assert (privacy.policy_url, privacy.policy_version) == ("https://acme.example/privacy", "v1")
    assert not AuditEvent.objects.filter(action="privacy.settings.changed").exists()


@pytest.mark.parametrize("role", ADMINS)
def test_admins_add_and_remove_processors_audited(world, client, role):
    admin = world.users[role]
    work_in(client, admin, world.a)

    page = client.post(
        PRIVACY_URL,
        {
            "action": "processor",
            "name": "Mailfabrikken AS",
            "purpose": "Email delivery",
            "country": "Norway",
            "agreement_date": "2026-02-01",
        },
        follow=True,
    )

    assert "Mailfabrikken AS was added." in page.content.decode()
    with system_code():
        processor = DataProcessor.objects.get()
    assert (processor.entity, processor.agreement_date) == (world.a, date(2026, 2, 1))
    added = AuditEvent.objects.get(action="privacy.processor.added")
    assert (added.actor, added.entity, added.data) == (admin, world.a, {"name": "Mailfabrikken AS"})
    listed = client.get(PRIVACY_URL).content.decode()
    assert "Mailfabrikken AS" in listed and "2026-02-01" in listed

    missing = client.post(PRIVACY_URL, {"action": "processor", "name": "Half AS"})
    assert missing.status_code == 200
    assert "This field is required." in missing.content.decode()

    remove = f"/settings/privacy/processors/{processor.pk}/remove/"
    ask = client.post(remove)
    assert "<h1>Remove Mailfabrikken AS?</h1>" in ask.content.decode()
    with system_code():
        assert DataProcessor.objects.exists()  # not before the second press
    removed_page = client.post(remove, {"confirm": "yes"}, follow=True)

    assert "Mailfabrikken AS was removed." in removed_page.content.decode()
    with system_code():
        assert not DataProcessor.objects.exists()
    removed = AuditEvent.objects.get(action="privacy.processor.removed")
    assert (removed.actor, removed.data) == (admin, {"name": "Mailfabrikken AS"})


@pytest.mark.parametrize("role", STAFF)
def test_staff_cannot_reach_privacy_settings(world, client, role):
    processor = add_processor(world.a)
    work_in(client, world.users[role], world.a)
    assert client.get(PRIVACY_URL).status_code == 403
    assert client.post(PRIVACY_URL, {"policy_url": "https://x.example"}).status_code == 403
    data = {"action": "processor", "name": "X", "purpose": "Y", "country": "Z"}
    assert client.post(PRIVACY_URL, data).status_code == 403
    remove = f"/settings/privacy/processors/{processor.pk}/remove/"
    assert client.post(remove).status_code == 403
    with system_code():
        assert DataProcessor.objects.count() == 1
        assert not PrivacySettings.objects.exclude(policy_url="").exists()


def test_another_entitys_processor_cannot_be_removed(world, client):
    theirs = add_processor(world.b, name="Svensk Post AB")
    work_in(client, world.users[Role.ADMIN], world.a)
    page = client.get(PRIVACY_URL).content.decode()
    assert "Svensk Post AB" not in page
    assert (
        client.post(
            f"/settings/privacy/processors/{theirs.pk}/remove/", {"confirm": "yes"}
        ).status_code
        == 404
    )
    with system_code():
        assert DataProcessor.objects.filter(pk=theirs.pk).exists()
