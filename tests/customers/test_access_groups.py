"""Settings -> Access groups: admins create and edit them (audited), names are unique
within the entity, members must belong to it; staff cannot manage groups, and another
entity's group is a 404."""

import pytest

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import (
    AccessGroup,
)
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import text

# --- Access groups ------------------------------------------------------------------------

GROUPS_URL = "/settings/access-groups/"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MAIN_ADMIN])
def test_admins_create_and_edit_access_groups(world, client, role):
    admin = world.users[role]
    sales, guest = world.users[Role.SALES], world.users[Role.GUEST]
    work_in(client, admin, world.a)
    assert client.get(GROUPS_URL).status_code == 200

    response = client.post(GROUPS_URL, {"name": "Legal", "members": [sales.pk, guest.pk]})
    assert response.status_code == 302
    with system_code():
        group = AccessGroup.objects.get(name="Legal")
        assert group.entity == world.a
        assert set(group.members.values_list("pk", flat=True)) == {sales.pk, guest.pk}
    created = AuditEvent.objects.get(action="access_group.created")
    assert (created.actor, created.entity) == (admin, world.a)
    assert created.data == {"added": sorted([sales.pk, guest.pk]), "removed": []}
    listing = text(client.get(GROUPS_URL))
    assert "Legal" in listing and "sales" in listing

    collector = world.users[Role.COLLECTOR]
    response = client.post(
        f"{GROUPS_URL}{group.pk}/", {"name": "Legal", "members": [guest.pk, collector.pk]}
    )
    assert response.status_code == 302
    updated = AuditEvent.objects.get(action="access_group.updated")
    assert updated.data == {"added": [collector.pk], "removed": [sales.pk]}
    with system_code():
        assert set(group.members.values_list("pk", flat=True)) == {guest.pk, collector.pk}


def test_a_duplicate_group_name_is_refused(world, client):
    with system_code():
        AccessGroup.objects.create(entity=world.a, name="Legal")
        AccessGroup.objects.create(entity=world.b, name="Board")
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(GROUPS_URL, {"name": " legal "})
    assert response.status_code == 200
    assert "There is already a group called legal." in text(response)
    with system_code():
        assert AccessGroup.objects.filter(entity=world.a).count() == 1
    # Another entity's name is free here.
    assert client.post(GROUPS_URL, {"name": "Board"}).status_code == 302
    with system_code():
        assert AccessGroup.objects.filter(entity=world.a, name="Board").exists()


def test_group_members_must_belong_to_the_entity(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(GROUPS_URL, {"name": "Legal", "members": [world.outsider.pk]})
    assert response.status_code == 200
    assert "Select a valid choice" in text(response)
    with system_code():
        assert not AccessGroup.objects.exists()


@pytest.mark.parametrize(
    "role", [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]
)
def test_staff_cannot_manage_access_groups(world, client, role):
    with system_code():
        group = AccessGroup.objects.create(entity=world.a, name="Legal")
    work_in(client, world.users[role], world.a)
    assert client.get(GROUPS_URL).status_code == 403
    assert client.post(GROUPS_URL, {"name": "Mine"}).status_code == 403
    assert client.get(f"{GROUPS_URL}{group.pk}/").status_code == 403
    member = {"name": "Legal", "members": [world.users[role].pk]}
    assert client.post(f"{GROUPS_URL}{group.pk}/", member).status_code == 403
    with system_code():
        assert AccessGroup.objects.count() == 1
        assert not group.members.exists()


def test_another_entitys_group_is_404(world, client):
    with system_code():
        theirs = AccessGroup.objects.create(entity=world.b, name="Their group")
        ours = AccessGroup.objects.create(entity=world.a, name="Our group")
    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.get(f"{GROUPS_URL}{ours.pk}/").status_code == 200
    response = client.get(f"{GROUPS_URL}{theirs.pk}/")
    assert response.status_code == 404
    assert "Their group" not in text(response)
    assert "Their group" not in text(client.get(GROUPS_URL))
    response = client.post(f"{GROUPS_URL}{theirs.pk}/", {"name": "Hijacked"})
    assert response.status_code == 404
    with system_code():
        assert AccessGroup.objects.get(pk=theirs.pk).name == "Their group"
