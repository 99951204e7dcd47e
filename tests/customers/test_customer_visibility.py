"""Who sees which customer: the role restriction rule, on every page that shows customer
data, plus the card's explanation, secrets, query counts, the customer form and access
groups.

The expectations below are written from the product rule, not from the code: an entity
may restrict Collector (to the customers they manage as collector) and Sales, Sales
administration and Guest (to the customers assigned to them); every other role, and every
unrestricted role, sees all customers of the entity. What a user may not see is a 404
everywhere -- never a 403 -- and is missing from lists, search results and counts.
"""

import csv
import io
import json
import re
from io import StringIO
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Membership
from accounts.roles import Role, can
from accounts.tenancy import system_code
from customers.models import (
    AccessGroup,
    ContactPerson,
    Customer,
    CustomerAssignment,
    Invoice,
    Secret,
)
from customers.selectors import scope_for
from security.audit import record
from security.models import AuditEvent, SecurityPolicy
from tests.conftest import make_user, work_in
from tests.test_isolation import OBJECT_VIEWS

# --- The rule, written down independently of accounts.roles -------------------------------

# Restrictable role -> the kind of customer it keeps when its entity restricts it.
RESTRICTION = {
    Role.COLLECTOR: "collector",
    Role.SALES: "assigned",
    Role.SALES_ADMIN: "assigned",
    Role.GUEST: "assigned",
}
ALL_RESTRICTABLE = ["collector", "guest", "sales", "sales_admin"]
EDITORS = {Role.MAIN_ADMIN, Role.ADMIN, Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES_ADMIN}
KINDS = ["collector", "assigned", "neither"]
RESTRICTIONS = {"restricted": ALL_RESTRICTABLE, "unrestricted": []}


def visible(role, restricted, kind):
    """`restricted` names an entry of RESTRICTIONS."""
    if not RESTRICTIONS[restricted] or role not in RESTRICTION:
        return True
    return RESTRICTION[role] == kind


def restrict(entity, roles):
    SecurityPolicy.objects.update_or_create(entity=entity, defaults={"restricted_roles": roles})


def text(response):
    return response.content.decode()


def table_body(response):
    """The rows of a list page (the search box echoes the query, so look at rows only)."""
    match = re.search(r"<tbody>(.*?)</tbody>", text(response), re.S)
    assert match, "no table on the page"
    return match.group(1)


def figure(response):
    match = re.search(r'<p class="figure">(\d+)</p>', text(response))
    assert match, "no customer count on the dashboard"
    return int(match.group(1))


def why(response):
    match = re.search(r'data-testid="why-visible">(.*?)</p>', text(response), re.S)
    assert match, "no why-visible line on the card"
    return match.group(1).strip()


# --- 1. The pure rule ------------------------------------------------------------------------

SCOPE_ROWS = [
    (role, restricted_name, RESTRICTION.get(role, "all") if roles else "all")
    for role in Role
    for restricted_name, roles in RESTRICTIONS.items()
]


@pytest.mark.parametrize(
    ("role", "restricted", "kind"),
    SCOPE_ROWS,
    ids=[f"{role.value}-{restricted}" for role, restricted, _ in SCOPE_ROWS],
)
def test_scope_for_every_role(role, restricted, kind):
    expected = {"collector": "managed", "assigned": "assigned", "all": "all"}[kind]
    scope = scope_for(role, 42, RESTRICTIONS[restricted])
    assert (scope.kind, scope.user_id, scope.role) == (expected, 42, role)
    # The role's value works as well as the enum member.
    assert scope_for(role.value, 42, RESTRICTIONS[restricted]) == scope


@pytest.mark.parametrize("role", list(RESTRICTION))
def test_scope_for_restricts_only_the_listed_roles(role):
    others = [value for value in ALL_RESTRICTABLE if value != role.value]
    assert scope_for(role, 1, others).kind == "all"
    assert scope_for(role, 1, [role.value]).kind != "all"
    assert scope_for(role, 1, None).kind == "all"


@pytest.mark.parametrize("role", [Role.MAIN_ADMIN, Role.ADMIN, Role.CREDIT_MANAGER])
def test_scope_for_never_restricts_admins_and_credit_managers(role):
    # Even if such a value got into the stored list, it restricts nothing.
    everything = ALL_RESTRICTABLE + ["main_admin", "admin", "credit_manager"]
    assert scope_for(role, 1, everything).kind == "all"


# --- 2. The matrix on the real views ------------------------------------------------------

NAMES = {
    "collector": ("K-100", "Fjordvik Transport AS"),
    "assigned": ("K-200", "Birkeland Bygg AS"),
    "neither": ("K-300", "Lyngmo Fisk AS"),
}


class Scene:
    """Three customers of entity a, seen from `user`: one they collect, one assigned to
    them, one neither. Each has a contact, an invoice and a secret shared with a group
    every user of the entity is in (so only customer visibility decides)."""

    def __init__(self, world, user):
        self.user = user
        self.someone_else = make_user("someone-else@acme.example")
        Membership.objects.create(user=self.someone_else, entity=world.a, role=Role.SALES)
        self.customers, self.contacts, self.invoices, self.secrets = {}, {}, {}, {}
        self.bodies = {}
        with system_code():
            group = AccessGroup.objects.create(entity=world.a, name="Everyone")
            group.members.set([*world.users.values(), self.someone_else])
            for kind, (number, name) in NAMES.items():
                word = name.split()[0]
                customer = Customer.objects.create(
                    entity=world.a,
                    number=number,
                    name=name,
                    collector=user if kind == "collector" else self.someone_else,
                )
                assignee = user if kind == "assigned" else self.someone_else
                CustomerAssignment.objects.create(entity=world.a, customer=customer, user=assignee)
                self.customers[kind] = customer
                self.contacts[kind] = ContactPerson.objects.create(
                    entity=world.a, customer=customer, name=f"Kontakt {word}"
                )
                self.invoices[kind] = Invoice.objects.create(
                    entity=world.a,
                    customer=customer,
                    number=f"F-{number}",
                    issued_on="2025-01-10",
                    due_on="2025-02-10",
                    amount="1000.00",
                )
                secret = Secret(
                    entity=world.a, customer=customer, title=f"Avtale {word}", created_by=user
                )
                self.bodies[kind] = f"Hemmelig {word} 4711"
                secret.set_body(self.bodies[kind])
                secret.save()
                secret.groups.set([group])
                self.secrets[kind] = secret
            # Another entity's customer is never anyone's business in entity a.
            Customer.objects.create(entity=world.b, number="K-100", name="Sverige Kund AB")


def scene_for(world, client, role, restricted):
    user = world.users[role]
    scene = Scene(world, user)
    restrict(world.a, RESTRICTIONS[restricted])
    work_in(client, user, world.a)
    return scene


MATRIX = [
    (role, restricted, kind) for role in Role for restricted in RESTRICTIONS for kind in KINDS
]


def matrix_params(group):
    return [
        pytest.param(role, restricted, kind, id=f"{role.value}-{restricted}-{kind}")
        for role, restricted, kind in MATRIX
    ]


@pytest.mark.parametrize(("role", "restricted", "kind"), matrix_params("read"))
def test_read_views_show_exactly_the_visible_customers(world, client, role, restricted, kind):
    scene = scene_for(world, client, role, restricted)
    customer = scene.customers[kind]
    contact, invoice, secret = scene.contacts[kind], scene.invoices[kind], scene.secrets[kind]
    body = scene.bodies[kind]
    shown = visible(role, restricted, kind)
    leaks = [customer.name, contact.name, invoice.number, secret.title, body]

    # List and search.
    searches = [
        "?" + urlencode({"q": customer.name}),
        "?" + urlencode({"q": customer.number}),
        "?sort=-balance",
    ]
    for url in ["/customers/", *(f"/customers/{query}" for query in searches)]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert (customer.name in table_body(response)) == shown, url
        assert "Sverige Kund AB" not in text(response)

    # The card and each tab.
    tabs = {
        "": customer.name,
        "contacts/": contact.name,
        "invoices/": invoice.number,
        "secrets/": secret.title,
        "history/": customer.name,
    }
    for tab, evidence in tabs.items():
        url = f"/customers/{customer.pk}/{tab}"
        response = client.get(url)
        if shown:
            assert response.status_code == 200, url
            assert customer.name in text(response) and evidence in text(response), url
        else:
            assert response.status_code == 404, url
            assert not any(leak in text(response) for leak in leaks), url

    # Revealing the secret (the user is in its group).
    before = AuditEvent.objects.filter(action="secret.revealed").count()
    response = client.post(f"/customers/secrets/{secret.pk}/reveal/")
    assert response.status_code == (200 if shown else 404)
    assert (body in text(response)) == shown
    after = AuditEvent.objects.filter(action="secret.revealed").count()
    assert after - before == (1 if shown else 0)


@pytest.mark.parametrize(("role", "restricted", "kind"), matrix_params("edit"))
def test_edit_views_follow_visibility_then_capability(world, client, role, restricted, kind):
    scene = scene_for(world, client, role, restricted)
    customer, contact = scene.customers[kind], scene.contacts[kind]
    urls = [
        f"/customers/{customer.pk}/edit/",
        f"/customers/{customer.pk}/contacts/new/",
        f"/customers/contacts/{contact.pk}/edit/",
    ]
    shown = visible(role, restricted, kind)
    for url in urls:
        response = client.get(url)
        if not shown:
            assert response.status_code == 404, url
        elif role in EDITORS:
            assert response.status_code == 200, url
            assert customer.name in text(response), url
        else:
            assert response.status_code == 403, url
        if response.status_code != 200:
            assert customer.name not in text(response), url
            assert contact.name not in text(response), url


@pytest.mark.parametrize(
    ("role", "restricted"),
    [(role, restricted) for role in Role for restricted in RESTRICTIONS],
    ids=[f"{role.value}-{restricted}" for role in Role for restricted in RESTRICTIONS],
)
def test_the_dashboard_counts_the_visible_customers(world, client, role, restricted):
    scene_for(world, client, role, restricted)
    expected = sum(visible(role, restricted, kind) for kind in KINDS)
    response = client.get("/")
    assert response.status_code == 200
    assert figure(response) == expected


# Every object view of customer data, found by walking the URL configuration, so a view
# added later joins this check by existing (the matrix above names the views of the brief).
CUSTOMER_MODELS = {
    Customer: "customers",
    ContactPerson: "contacts",
    Invoice: "invoices",
    Secret: "secrets",
}
CUSTOMER_OBJECT_VIEWS = [
    (route, pattern)
    for route, pattern in OBJECT_VIEWS
    if pattern.callback.view_class.model in CUSTOMER_MODELS
]
WALK = [
    pytest.param(route, pattern, role, id=f"{route}-{role.value}")
    for route, pattern in CUSTOMER_OBJECT_VIEWS
    for role in RESTRICTION
    if can(role, pattern.callback.view_class.required_capability)
]


def test_the_walk_finds_the_customer_views():
    routes = {route for route, _ in CUSTOMER_OBJECT_VIEWS}
    assert {
        "customers/<int:pk>/",
        "customers/<int:pk>/edit/",
        "customers/contacts/<int:pk>/edit/",
        "customers/secrets/<int:pk>/reveal/",
    } <= routes


@pytest.mark.parametrize(("route", "pattern", "role"), WALK)
def test_every_customer_object_view_hides_what_the_role_may_not_see(
    world, client, route, pattern, role
):
    scene = scene_for(world, client, role, "restricted")
    view_class = pattern.callback.view_class
    objects = getattr(scene, CUSTOMER_MODELS[view_class.model])
    mine, hidden = objects[RESTRICTION[role]], objects["neither"]
    hidden_url = reverse(pattern.name, kwargs={"pk": hidden.pk})
    for method in ("get", "post"):
        if hasattr(view_class, method):
            response = getattr(client, method)(hidden_url)
            assert response.status_code == 404, f"{method.upper()} {hidden_url}"
            assert NAMES["neither"][1] not in text(response)
    if hasattr(view_class, "get"):
        url = reverse(pattern.name, kwargs={"pk": mine.pk})
        assert client.get(url).status_code == 200, url


def test_writes_to_an_invisible_customer_are_404_and_change_nothing(world, client):
    scene = scene_for(world, client, Role.COLLECTOR, "restricted")
    hidden = scene.customers["neither"]
    contact = scene.contacts["neither"]
    form = {"number": hidden.number, "name": "Renamed AS", "phone": ""}
    assert client.post(f"/customers/{hidden.pk}/edit/", form).status_code == 404
    assert client.post(f"/customers/{hidden.pk}/contacts/new/", {"name": "X"}).status_code == 404
    assert client.post(f"/customers/contacts/{contact.pk}/edit/", {"name": "Y"}).status_code == 404
    secret_form = {"title": "T", "body": "B"}
    assert client.post(f"/customers/{hidden.pk}/secrets/", secret_form).status_code == 404
    with system_code():
        assert Customer.objects.get(pk=hidden.pk).name == hidden.name
        assert ContactPerson.objects.filter(customer=hidden).count() == 1
        assert ContactPerson.objects.get(pk=contact.pk).name == contact.name
        assert Secret.objects.filter(customer=hidden).count() == 1
    # Positive control: the customer the collector manages takes the same edit.
    managed = scene.customers["collector"]
    form = {"number": managed.number, "name": "Renamed AS", "phone": ""}
    assert client.post(f"/customers/{managed.pk}/edit/", form).status_code == 302
    with system_code():
        assert Customer.objects.get(pk=managed.pk).name == "Renamed AS"


def test_a_missing_customer_is_404_like_a_hidden_one(world, client):
    scene = scene_for(world, client, Role.COLLECTOR, "restricted")
    hidden = scene.customers["neither"]
    missing = max(c.pk for c in scene.customers.values()) + 1000
    for tab in ("", "contacts/", "secrets/", "edit/"):
        assert client.get(f"/customers/{missing}/{tab}").status_code == 404
        assert client.get(f"/customers/{hidden.pk}/{tab}").status_code == 404


# --- 3. Changes apply on the next request -------------------------------------------------


def settings_form(restricted_roles):
    return {
        "password_max_age_days": "",
        "inactivity_limit_months": "",
        "ip_code_recipient": "admins",
        "restricted_roles": restricted_roles,
        "interactive_link_days": "30",
        "document_link_days": "90",
    }


def customer_form(customer, **overrides):
    data = {
        "number": customer.number,
        "name": customer.name,
        "phone": customer.phone,
        "collector": customer.collector_id or "",
        "assigned": list(customer.assignments.values_list("user_id", flat=True)),
    }
    data.update(overrides)
    return data


def test_assignment_and_restriction_changes_apply_on_the_next_request(world, client):
    sales = world.users[Role.SALES]
    scene = Scene(world, sales)
    admin = work_in(Client(), world.users[Role.ADMIN], world.a)
    work_in(client, sales, world.a)
    assigned = scene.customers["assigned"]
    card = f"/customers/{assigned.pk}/"

    assert figure(client.get("/")) == 3  # no restriction yet
    # The admin restricts Sales through the settings page.
    response = admin.post("/settings/security/", settings_form(["sales"]))
    assert response.status_code == 302
    assert SecurityPolicy.objects.get(entity=world.a).restricted_roles == ["sales"]
    assert figure(client.get("/")) == 1
    assert client.get(card).status_code == 200
    assert client.get(f"/customers/{scene.customers['neither'].pk}/").status_code == 404

    # The admin removes the assignment: gone at once.
    with system_code():
        form = customer_form(assigned, assigned=[scene.someone_else.pk])
    assert admin.post(f"/customers/{assigned.pk}/edit/", form).status_code == 302
    assert client.get(card).status_code == 404
    assert assigned.name not in table_body(client.get("/customers/"))
    assert figure(client.get("/")) == 0

    # ... and adds it back.
    with system_code():
        form = customer_form(assigned, assigned=[scene.someone_else.pk, sales.pk])
    assert admin.post(f"/customers/{assigned.pk}/edit/", form).status_code == 302
    assert client.get(card).status_code == 200

    # Lifting the restriction shows every customer at once.
    assert admin.post("/settings/security/", settings_form([])).status_code == 302
    assert figure(client.get("/")) == 3
    rows = table_body(client.get("/customers/"))
    assert all(name in rows for _, name in NAMES.values())


def test_a_role_change_applies_on_the_next_request(world, client):
    user = world.users[Role.SALES]
    scene = Scene(world, user)
    restrict(world.a, ALL_RESTRICTABLE)
    work_in(client, user, world.a)
    managed, assigned = scene.customers["collector"], scene.customers["assigned"]
    assert client.get(f"/customers/{managed.pk}/").status_code == 404
    assert client.get(f"/customers/{assigned.pk}/").status_code == 200

    Membership.objects.filter(user=user, entity=world.a).update(role=Role.COLLECTOR)
    assert client.get(f"/customers/{managed.pk}/").status_code == 200
    assert client.get(f"/customers/{assigned.pk}/").status_code == 404

    Membership.objects.filter(user=user, entity=world.a).update(role=Role.CREDIT_MANAGER)
    assert figure(client.get("/")) == 3


def test_a_new_collector_takes_the_customer_with_them(world, client):
    collector = world.users[Role.COLLECTOR]
    scene = Scene(world, collector)
    restrict(world.a, ["collector"])
    admin = work_in(Client(), world.users[Role.ADMIN], world.a)
    work_in(client, collector, world.a)
    managed = scene.customers["collector"]
    assert client.get(f"/customers/{managed.pk}/").status_code == 200

    with system_code():
        form = customer_form(managed, collector=scene.someone_else.pk)
    assert admin.post(f"/customers/{managed.pk}/edit/", form).status_code == 302
    assert client.get(f"/customers/{managed.pk}/").status_code == 404
    assert figure(client.get("/")) == 0


# --- 4. Why the card is visible -----------------------------------------------------------

WHY_ROWS = [
    (Role.COLLECTOR, "restricted", "collector", "because you are its collector (Collector role)"),
    (Role.SALES, "restricted", "assigned", "because it is assigned to you (Sales role)"),
    (
        Role.SALES_ADMIN,
        "restricted",
        "assigned",
        "because it is assigned to you (Sales administration role)",
    ),
    (Role.GUEST, "restricted", "assigned", "because it is assigned to you (Guest role)"),
    (Role.SALES, "unrestricted", "neither", "Your role (Sales) sees every customer"),
    (Role.COLLECTOR, "unrestricted", "assigned", "Your role (Collector) sees every customer"),
    (Role.ADMIN, "restricted", "neither", "Your role (Admin) sees every customer"),
    (Role.MAIN_ADMIN, "restricted", "collector", "Your role (Main admin) sees every customer"),
    (
        Role.CREDIT_MANAGER,
        "restricted",
        "neither",
        "Your role (Credit manager) sees every customer",
    ),
]


@pytest.mark.parametrize(
    ("role", "restricted", "kind", "reason"),
    WHY_ROWS,
    ids=[f"{r.value}-{restricted}-{kind}" for r, restricted, kind, _ in WHY_ROWS],
)
def test_the_card_says_why_the_user_sees_it(world, client, role, restricted, kind, reason):
    scene = scene_for(world, client, role, restricted)
    customer = scene.customers[kind]
    for tab in ("", "contacts/", "secrets/"):
        response = client.get(f"/customers/{customer.pk}/{tab}")
        assert response.status_code == 200
        assert reason in why(response)


# --- 5. Secrets -----------------------------------------------------------------------------

BODY = "Konto 1234.56.78903, PIN 8264"


@pytest.fixture
def secrets_scene(world):
    """A customer with a secret shared with "Legal" (credit manager and collector); the
    admin and main admin are in no group, the guest only in "Board"."""
    with system_code():
        customer = Customer.objects.create(entity=world.a, number="S-1", name="Hemmelig AS")
        legal = AccessGroup.objects.create(entity=world.a, name="Legal")
        legal.members.set([world.users[Role.CREDIT_MANAGER], world.users[Role.COLLECTOR]])
        board = AccessGroup.objects.create(entity=world.a, name="Board")
        board.members.set([world.users[Role.GUEST]])
    return customer, legal, board


def create_secret_through_the_card(world, client, customer, legal):
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/{customer.pk}/secrets/",
        {"title": "Bank details", "body": BODY, "groups": [legal.pk]},
    )
    assert response.status_code == 302
    with system_code():
        return Secret.objects.get(customer=customer)


def test_only_members_see_and_reveal_a_secret(world, client, secrets_scene):
    customer, legal, _ = secrets_scene
    secret = create_secret_through_the_card(world, client, customer, legal)

    for role in (Role.CREDIT_MANAGER, Role.COLLECTOR):
        work_in(client, world.users[role], world.a)
        tab = client.get(f"/customers/{customer.pk}/secrets/")
        assert "Bank details" in text(tab)
        reveal = client.post(f"/customers/secrets/{secret.pk}/reveal/")
        assert reveal.status_code == 200
        assert BODY in text(reveal)
        assert reveal["Cache-Control"] == "no-store"

    for role in (Role.ADMIN, Role.MAIN_ADMIN, Role.GUEST, Role.SALES):
        work_in(client, world.users[role], world.a)
        tab = client.get(f"/customers/{customer.pk}/secrets/")
        assert tab.status_code == 200  # the customer itself is visible
        assert "Bank details" not in text(tab), role
        reveal = client.post(f"/customers/secrets/{secret.pk}/reveal/")
        assert reveal.status_code == 404, role
        assert BODY not in text(reveal) and "Bank details" not in text(reveal)

    revealed = AuditEvent.objects.filter(action="secret.revealed")
    assert revealed.count() == 2
    assert set(revealed.values_list("actor", flat=True)) == {
        world.users[Role.CREDIT_MANAGER].pk,
        world.users[Role.COLLECTOR].pk,
    }


def test_a_secret_of_another_entity_cannot_be_revealed(world, client, secrets_scene):
    with system_code():
        other = Customer.objects.create(entity=world.b, number="S-1", name="Sverige AB")
        group = AccessGroup.objects.create(entity=world.b, name="Legal")
        group.members.set([world.main_admin])
        secret = Secret(entity=world.b, customer=other, title="B title")
        secret.set_body(BODY)
        secret.save()
        secret.groups.set([group])
    # A member of the group, but working in entity a.
    work_in(client, world.main_admin, world.a)
    assert client.post(f"/customers/secrets/{secret.pk}/reveal/").status_code == 404
    # Positive control: in entity b it works.
    work_in(client, world.main_admin, world.b)
    assert BODY in text(client.post(f"/customers/secrets/{secret.pk}/reveal/"))


def test_the_body_is_never_listed_logged_exported_or_stored_in_clear(world, client, secrets_scene):
    customer, legal, _ = secrets_scene
    secret = create_secret_through_the_card(world, client, customer, legal)
    reveal = client.post(f"/customers/secrets/{secret.pk}/reveal/")
    assert BODY in text(reveal)  # positive control: the body does exist

    event = AuditEvent.objects.get(action="secret.revealed")
    assert event.actor == world.users[Role.CREDIT_MANAGER]
    assert event.target_id == str(customer.pk)
    assert event.data["secret"] == secret.pk
    assert "body" not in event.data
    for stored in AuditEvent.objects.all():
        assert BODY not in json.dumps(stored.data)
        assert "8264" not in json.dumps(stored.data)

    # The card's own pages.
    tab = client.get(f"/customers/{customer.pk}/secrets/")
    assert "Bank details" in text(tab) and BODY not in text(tab)
    history = client.get(f"/customers/{customer.pk}/history/")
    assert "secret.revealed" in text(history) and "secret.created" in text(history)
    assert "Bank details" in text(history)  # the title is logged ...
    assert BODY not in text(history) and "8264" not in text(history)  # ... the body never

    # The audit log, its event pages and its export.
    work_in(client, world.users[Role.ADMIN], world.a)
    log = client.get("/audit/")
    assert "secret.revealed" in text(log) and BODY not in text(log)
    for stored in AuditEvent.objects.filter(action__startswith="secret."):
        page = client.get(f"/audit/{stored.pk}/")
        assert page.status_code == 200
        assert "Bank details" in text(page) or "Legal" in text(page)
        assert BODY not in text(page)
    export = client.get("/audit/export.csv")
    assert export.status_code == 200
    content = b"".join(export.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(content)))
    assert any(row[2] == "secret.revealed" for row in rows[1:])
    assert BODY not in content and "8264" not in content

    # The database column.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT encrypted_body FROM {Secret._meta.db_table} WHERE id = %s", [secret.pk]
        )
        (column,) = cursor.fetchone()
    assert column and BODY not in column and "8264" not in column
    assert secret.body == BODY


def test_a_secret_can_be_shared_only_with_ones_own_groups(world, client, secrets_scene):
    customer, legal, board = secrets_scene
    admin = world.users[Role.ADMIN]
    work_in(client, admin, world.a)
    attempt = {"title": "Sneaky", "body": BODY, "groups": [legal.pk]}
    # In no group: no form at all, and a forged post saves nothing.
    page = client.get(f"/customers/{customer.pk}/secrets/")
    assert "You belong to no access group" in text(page)
    assert client.post(f"/customers/{customer.pk}/secrets/", attempt).status_code == 200
    # In "Board" only: "Legal" is not a choice.
    with system_code():
        board.members.add(admin)
    response = client.post(f"/customers/{customer.pk}/secrets/", attempt)
    assert response.status_code == 200
    assert "Select a valid choice" in text(response)
    with system_code():
        assert not Secret.objects.filter(customer=customer).exists()
    # Positive control: sharing with "Board" works.
    shared = {**attempt, "groups": [board.pk]}
    assert client.post(f"/customers/{customer.pk}/secrets/", shared).status_code == 302


def test_rotating_keys_re_encrypts_customer_secrets(world):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        with system_code():
            customer = Customer.objects.create(entity=world.a, number="R-1", name="Rot AS")
            secret = Secret(entity=world.a, customer=customer, title="Rotated")
            secret.set_body(BODY)
            secret.save()
    with system_code():
        before = Secret.objects.get(pk=secret.pk).encrypted_body
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        call_command("rotate_encryption_keys", stdout=StringIO())
    with system_code():
        after = Secret.objects.get(pk=secret.pk)
    assert after.encrypted_body != before
    assert Fernet(new.encode()).decrypt(after.encrypted_body.encode()).decode() == BODY
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(after.encrypted_body.encode())
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert after.body == BODY


# --- 6. Query counts --------------------------------------------------------------------------


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def populate(world, how_many, start, viewer, helpers):
    """`how_many` customers, each with a collector, three assignments (one the viewer),
    two invoices and a contact."""
    with system_code():
        for n in range(start, start + how_many):
            customer = Customer.objects.create(
                entity=world.a,
                number=f"Q-{n:04d}",
                name=f"Kunde {n:04d} AS",
                collector=helpers[n % len(helpers)],
            )
            for user in {viewer, *helpers[:2]}:
                CustomerAssignment.objects.create(entity=world.a, customer=customer, user=user)
            for i in range(2):
                Invoice.objects.create(
                    entity=world.a,
                    customer=customer,
                    number=f"I-{n:04d}-{i}",
                    issued_on="2025-03-01",
                    due_on="2025-04-01",
                    amount="250.00",
                )
            ContactPerson.objects.create(entity=world.a, customer=customer, name=f"P {n}")


VIEWERS = [(Role.ADMIN, []), (Role.SALES, ["sales"]), (Role.COLLECTOR, [])]


@pytest.mark.parametrize(
    ("role", "restricted"), VIEWERS, ids=[f"{r.value}-{bool(x)}" for r, x in VIEWERS]
)
def test_the_customer_list_costs_a_fixed_number_of_queries(world, client, role, restricted):
    viewer = world.users[role]
    helpers = [world.users[Role.COLLECTOR], world.users[Role.GUEST], world.users[Role.ADMIN]]
    restrict(world.a, restricted)
    populate(world, 3, 0, viewer, helpers)
    work_in(client, viewer, world.a)
    client.get("/")  # warm up: the first request after sign-in checks for a 2FA device
    urls = ["/customers/", "/customers/?q=Kunde&sort=-balance", "/"]
    for url in urls:
        client.get(url)
    small = {url: count_queries(client, url) for url in urls}
    populate(world, 57, 3, viewer, helpers)
    for url in urls:  # new customers drop the cached collector choices: read them again
        client.get(url)
    large = {url: count_queries(client, url) for url in urls}
    assert large == small
    assert "Kunde 0049 AS" in table_body(client.get("/customers/"))  # a full page of 50
    assert max(small.values()) <= 12


@pytest.mark.parametrize(
    ("role", "restricted"), VIEWERS, ids=[f"{r.value}-{bool(x)}" for r, x in VIEWERS]
)
def test_the_card_costs_a_fixed_number_of_queries(world, client, role, restricted):
    viewer = world.users[role]
    restrict(world.a, restricted)
    others = []
    for n in range(6):
        other = make_user(f"extra-{n}@acme.example")
        Membership.objects.create(user=other, entity=world.a, role=Role.SALES)
        others.append(other)

    def card(number, size):
        with system_code():
            customer = Customer.objects.create(
                entity=world.a, number=number, name=f"Card {number}", collector=others[0]
            )
            for user in [viewer, *others[:size]]:
                CustomerAssignment.objects.create(entity=world.a, customer=customer, user=user)
            groups = []
            for g in range(size):
                group = AccessGroup.objects.create(entity=world.a, name=f"G {number} {g}")
                group.members.set([viewer, *others])
                groups.append(group)
            for i in range(size * 2):
                ContactPerson.objects.create(entity=world.a, customer=customer, name=f"C{i}")
                Invoice.objects.create(
                    entity=world.a,
                    customer=customer,
                    number=f"{number}-{i}",
                    issued_on="2025-03-01",
                    due_on="2025-04-01",
                    amount="99.00",
                )
                secret = Secret(entity=world.a, customer=customer, title=f"S{i}")
                secret.set_body("x")
                secret.save()
                secret.groups.set(groups)
            return customer

    small, large = card("SMALL", 1), card("LARGE", 6)
    with system_code():
        for number in range(12):
            record_target = large if number % 2 else small
            record("customer.updated", entity=world.a, target=record_target, data={"n": number})
    work_in(client, viewer, world.a)
    client.get("/")  # warm up
    for tab in ("", "contacts/", "invoices/", "secrets/", "history/", "edit/"):
        if tab == "edit/" and role not in EDITORS:
            continue
        # A tab may set something up on first use (e.g. default consent purposes).
        client.get(f"/customers/{small.pk}/{tab}")
        few = count_queries(client, f"/customers/{small.pk}/{tab}")
        many = count_queries(client, f"/customers/{large.pk}/{tab}")
        assert many == few, f"{tab or 'overview'}: {few} queries for 1, {many} for 6"
        assert few <= 15, tab


# --- 7. Creating and editing customers ------------------------------------------------------


def new_customer(**overrides):
    data = {"number": "N-1", "name": "Nordlys Handel AS", "phone": "", "assigned": []}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("22 33 44 55", "+4722334455"),
        ("+47 22 33 44 55", "+4722334455"),
        ("0047 22334455", "+4722334455"),
        ("912 34 567", "+4791234567"),
        ("+46 8 123 456 78", "+46812345678"),
        ("", ""),
    ],
)
def test_phone_numbers_are_stored_in_e164(world, client, typed, stored):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post("/customers/new/", new_customer(phone=typed))
    assert response.status_code == 302, text(response)
    with system_code():
        customer = Customer.objects.get(entity=world.a, number="N-1")
    assert customer.phone == stored
    assert response["Location"] == f"/customers/{customer.pk}/"


@pytest.mark.parametrize("typed", ["12", "not a phone", "+47 1234 5678 9999"])
def test_impossible_phone_numbers_are_refused(world, client, typed):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post("/customers/new/", new_customer(phone=typed))
    assert response.status_code == 200
    assert 'class="field-error"' in text(response)
    with system_code():
        assert not Customer.objects.filter(number="N-1").exists()


def test_a_customer_number_is_unique_within_the_entity_only(world, client):
    with system_code():
        Customer.objects.create(entity=world.a, number="N-1", name="First AS")
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post("/customers/new/", new_customer(number=" N-1 "))
    assert response.status_code == 200
    assert "Customer number N-1 is already used in this entity." in text(response)
    with system_code():
        assert Customer.objects.filter(number="N-1").count() == 1

    # The same number in entity b is fine.
    work_in(client, world.main_admin, world.b)
    assert client.post("/customers/new/", new_customer(number="N-1")).status_code == 302
    with system_code():
        assert Customer.objects.filter(number="N-1", entity=world.b).count() == 1

    # Saving a customer under its own number is not a clash.
    work_in(client, world.users[Role.ADMIN], world.a)
    with system_code():
        first = Customer.objects.get(entity=world.a, number="N-1")
        form = customer_form(first, name="First Renamed AS")
    assert client.post(f"/customers/{first.pk}/edit/", form).status_code == 302


def test_people_choices_offer_only_users_of_the_current_entity(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    page = text(client.get("/customers/new/"))
    for user in world.users.values():
        assert user.email in page
    for stranger in (world.outsider, world.b_admin, world.nobody):
        assert stranger.email not in page

    for stranger in (world.outsider, world.b_admin):
        for field, value in (("collector", stranger.pk), ("assigned", [stranger.pk])):
            response = client.post("/customers/new/", new_customer(**{field: value}))
            assert response.status_code == 200, (stranger, field)
            assert "Select a valid choice" in text(response)
    with system_code():
        assert not Customer.objects.exists()
        assert not CustomerAssignment.objects.exists()


def test_assignments_are_saved_and_audited(world, client):
    admin = world.users[Role.ADMIN]
    sales, guest = world.users[Role.SALES], world.users[Role.GUEST]
    work_in(client, admin, world.a)
    response = client.post(
        "/customers/new/",
        new_customer(collector=world.users[Role.COLLECTOR].pk, assigned=[sales.pk, guest.pk]),
    )
    assert response.status_code == 302
    with system_code():
        customer = Customer.objects.get(number="N-1")
        assert customer.collector == world.users[Role.COLLECTOR]
        assert set(customer.assignments.values_list("user_id", flat=True)) == {sales.pk, guest.pk}
    created = AuditEvent.objects.get(action="customer.created")
    assert created.data["assigned_added"] == sorted([sales.pk, guest.pk])
    assert "collector" in created.data["fields"]

    sales_admin = world.users[Role.SALES_ADMIN]
    with system_code():
        form = customer_form(customer, assigned=[guest.pk, sales_admin.pk])
    assert client.post(f"/customers/{customer.pk}/edit/", form).status_code == 302
    updated = AuditEvent.objects.get(action="customer.updated")
    assert updated.actor == admin and updated.entity == world.a
    assert updated.target_id == str(customer.pk)
    assert updated.data["assigned_added"] == [sales_admin.pk]
    assert updated.data["assigned_removed"] == [sales.pk]
    with system_code():
        assert set(customer.assignments.values_list("user_id", flat=True)) == {
            guest.pk,
            sales_admin.pk,
        }
    # The card lists who is assigned.
    card = text(client.get(f"/customers/{customer.pk}/"))
    assert "sales-admin" in card and "guest" in card


# --- 8. Access groups ---------------------------------------------------------------------

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
