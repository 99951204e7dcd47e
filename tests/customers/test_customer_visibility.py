"""Who sees which customer: the role restriction rule, on every page that shows customer
data, how changes apply on the next request, and the card's explanation. Secrets, query
counts, the customer form and access groups are in test_customer_secrets.py,
test_customer_query_counts.py, test_customer_form.py and test_access_groups.py.

The expectations below are written from the product rule, not from the code: an entity
may restrict Collector (to the customers they manage as collector) and Sales, Sales
administration and Guest (to the customers assigned to them); every other role, and every
unrestricted role, sees all customers of the entity. What a user may not see is a 404
everywhere -- never a 403 -- and is missing from lists, search results and counts.
"""

import re
from urllib.parse import urlencode

import pytest
from django.test import Client
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
from security.models import AuditEvent, SecurityPolicy
from tests.conftest import make_user, work_in
from tests.helpers import EDITORS, customer_form, restrict, table_body, text
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
KINDS = ["collector", "assigned", "neither"]
RESTRICTIONS = {"restricted": ALL_RESTRICTABLE, "unrestricted": []}


def visible(role, restricted, kind):
    """`restricted` names an entry of RESTRICTIONS."""
    if not RESTRICTIONS[restricted] or role not in RESTRICTION:
        return True
    return RESTRICTION[role] == kind


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
