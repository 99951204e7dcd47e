"""Tenancy: who reaches which entity, the switcher, and fail-closed scoping."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes.exceptions import ScopeError

from accounts.models import Membership
from accounts.roles import Capability, Role
from accounts.tenancy import SESSION_ENTITY_KEY, resolve_tenancy, system_code, tenant_scope
from customers.models import Customer
from tests.conftest import work_in
from tests.factories import customer


def test_a_group_member_reaches_every_entity_of_the_access(world):
    tenancy = resolve_tenancy(world.main_admin)
    assert [a.entity for a in tenancy.accesses] == [world.a, world.b]
    assert {a.via for a in tenancy.accesses} == {"group"}
    assert tenancy.can(Capability.MANAGE_GROUP_SECURITY)


def test_an_entity_membership_is_more_specific_than_the_group_role(world):
    Membership.objects.create(user=world.main_admin, entity=world.b, role=Role.GUEST)
    tenancy = resolve_tenancy(world.main_admin, world.b.pk)
    assert tenancy.entity == world.b
    assert tenancy.role == Role.GUEST
    assert not tenancy.can(Capability.VIEW_AUDIT)
    # Still main admin of the access: the multi-level settings stay theirs.
    assert tenancy.can(Capability.MANAGE_GROUP_SECURITY)


def test_group_security_is_only_granted_through_the_multi_entity_access(world):
    entity_main_admin = world.users[Role.ADMIN]
    Membership.objects.filter(user=entity_main_admin).update(role=Role.MAIN_ADMIN)
    tenancy = resolve_tenancy(entity_main_admin)
    assert tenancy.can(Capability.MANAGE_ENTITY_SECURITY)
    assert not tenancy.can(Capability.MANAGE_GROUP_SECURITY)


def test_resolution_costs_at_most_three_queries_whatever_the_number_of_entities(world):
    with CaptureQueriesContext(connection) as queries:
        resolve_tenancy(world.main_admin)
    assert len(queries) <= 3


@pytest.mark.parametrize("stored", ["abc", -3, 0, True, None, "999999999", [1]])
def test_a_tampered_or_stale_session_entity_falls_back_to_an_accessible_one(world, client, stored):
    client.force_login(world.users[Role.ADMIN])
    session = client.session
    session[SESSION_ENTITY_KEY] = stored
    session.save()
    response = client.get("/")
    assert response.status_code == 200
    assert response.context["tenancy"].entity == world.a
    assert client.session[SESSION_ENTITY_KEY] == world.a.pk


def test_a_session_pointing_at_a_strangers_entity_is_ignored(world, client):
    work_in(client, world.outsider, world.a)
    response = client.get("/")
    assert response.context["tenancy"].entity == world.c
    assert b"Other Company AS" in response.content


def test_the_switcher_changes_the_current_entity(world, client):
    work_in(client, world.main_admin, world.a)
    response = client.post("/switch-entity/", {"entity": str(world.b.pk)}, follow=True)
    assert response.context["tenancy"].entity == world.b
    assert "You are now working in Acme Sverige AB." in response.content.decode()


@pytest.mark.parametrize("value", ["", "abc", "-1", "99999999", "1e3", "9" * 40])
def test_the_switcher_explains_an_unknown_entity(world, client, value):
    work_in(client, world.main_admin, world.a)
    response = client.post("/switch-entity/", {"entity": value}, follow=True)
    assert response.status_code == 200
    assert "That entity does not exist or you have no access to it." in (response.content.decode())
    assert client.session[SESSION_ENTITY_KEY] == world.a.pk


def test_the_switcher_refuses_an_entity_of_another_tenant(world, client):
    work_in(client, world.main_admin, world.a)
    response = client.post("/switch-entity/", {"entity": str(world.c.pk)}, follow=True)
    assert "you have no access to it" in response.content.decode()
    assert client.session[SESSION_ENTITY_KEY] == world.a.pk


def test_the_switcher_only_accepts_post(world, client):
    work_in(client, world.main_admin, world.a)
    assert client.get("/switch-entity/", {"entity": world.b.pk}).status_code == 405


def test_a_user_without_any_entity_is_told_so(world, client):
    client.force_login(world.nobody)
    response = client.get("/")
    assert response.status_code == 403
    assert "You are not linked to any entity" in response.content.decode()


def test_an_unscoped_query_of_tenant_data_raises(world):
    with pytest.raises(ScopeError):
        list(Customer.objects.all())
    with pytest.raises(ScopeError):
        Customer.objects.filter(name="x").exists()


def test_system_code_is_explicitly_allowed_to_see_every_entity(world):
    customer(world.a, "1")
    customer(world.c, "2")
    with system_code():
        assert Customer.objects.count() == 2


def test_a_scope_only_shows_its_entity(world):
    mine = customer(world.a, "1")
    customer(world.c, "2")
    with tenant_scope(world.a):
        assert list(Customer.objects.all()) == [mine]


def test_a_scope_without_an_entity_is_refused_rather_than_unfiltered():
    with pytest.raises(ValueError):
        with tenant_scope(None):
            pass


def test_the_customer_list_shows_only_the_current_entitys_customers(world, client):
    customer(world.a, "1", "Fjord Fisk AS")
    customer(world.b, "2", "Svensk Stål AB")
    customer(world.c, "3", "Annen Kunde AS")
    response = work_in(client, world.users[Role.GUEST], world.a).get("/customers/")
    content = response.content.decode()
    assert "Fjord Fisk AS" in content
    assert "Svensk Stål AB" not in content and "Annen Kunde AS" not in content


def test_the_dashboard_shows_the_role_and_how_it_was_reached(world, client):
    response = work_in(client, world.main_admin, world.b).get("/")
    content = response.content.decode()
    assert "Main admin" in content
    assert "the multi-entity access Acme Group" in content
