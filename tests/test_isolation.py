"""Tenant isolation: every view that takes an object id answers 404 to strangers.

The URL configuration is walked, so a new object view joins this test by existing.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.access import ScopedObjectMixin
from accounts.roles import Role, can
from tests.conftest import work_in
from tests.factories import OBJECT_FACTORIES

SKIPPED_NAMESPACES = {"admin"}  # Django admin: platform operators only, no tenant data.
# Routes whose parameters are secrets checked by the view itself, not object ids (the
# "-open" ones take a link-bound session's handle, checked against its signed cookie).
TOKEN_ROUTES = {
    "password_reset_confirm",
    "consent-self-service",
    "consent-self-service-open",
    "customer-link",
    "customer-link-renew",
    "customer-link-invoice-pdf",
    "customer-link-open",
    "customer-link-open-renew",
    "customer-link-open-invoice-pdf",
}


def walk(patterns, prefix="", namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            if ns in SKIPPED_NAMESPACES:
                continue
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def object_views():
    found = []
    for route, pattern in walk(get_resolver().url_patterns):
        converters = getattr(pattern.pattern, "converters", {})
        if converters and pattern.name not in TOKEN_ROUTES:
            found.append((route, pattern))
    return found


OBJECT_VIEWS = object_views()


def test_the_walk_finds_the_object_views():
    routes = {route for route, _ in OBJECT_VIEWS}
    assert "customers/<int:pk>/" in routes
    assert "audit/<int:pk>/" in routes
    assert "settings/users/<int:pk>/reactivate/" in routes


def test_token_routes_are_really_token_routes():
    names = {pattern.name for _, pattern in walk(get_resolver().url_patterns)}
    assert TOKEN_ROUTES <= names, "a listed token route no longer exists"


@pytest.mark.parametrize("route,pattern", OBJECT_VIEWS, ids=[r for r, _ in OBJECT_VIEWS])
def test_object_view_is_scoped(route, pattern):
    view_class = getattr(pattern.callback, "view_class", None)
    assert view_class is not None and issubclass(view_class, ScopedObjectMixin), (
        f"{route} takes an object id but its view is not a ScopedObjectMixin"
    )
    assert pattern.name, f"{route} needs a URL name"
    assert view_class.model in OBJECT_FACTORIES, (
        f"add a factory for {view_class.model.__name__} to tests/factories.py"
    )


@pytest.mark.parametrize("route,pattern", OBJECT_VIEWS, ids=[r for r, _ in OBJECT_VIEWS])
def test_strangers_get_404(route, pattern, world, client):
    view_class = pattern.callback.view_class
    obj = OBJECT_FACTORIES[view_class.model](world.a)
    url = reverse(pattern.name, kwargs={"pk": obj.pk})
    capability = view_class.required_capability

    method = "get" if "get" in view_class.http_method_names else "post"

    def fetch(user, entity):
        client.logout()
        return getattr(work_in(client, user, entity), method)(url)

    # Positive control: an admin of the owning entity reaches it, so a 404 below means
    # "hidden", not "broken URL".
    assert fetch(world.users[Role.ADMIN], world.a).status_code in (200, 302)

    for stranger, their_entity in [(world.outsider, world.c), (world.b_admin, world.b)]:
        response = fetch(stranger, their_entity)
        assert response.status_code == 404, f"{stranger} reached {url}"
        assert str(obj) not in response.content.decode()

    # A member of the same access working in the other entity: still 404.
    assert fetch(world.main_admin, world.b).status_code == 404

    # Roles of the owning entity without the view's capability never reach the object.
    for role, user in world.users.items():
        if capability is not None and not can(role, capability):
            status = fetch(user, world.a).status_code
            assert status in (403, 404), f"{role} got {status} on {url}"

    client.logout()
    response = getattr(client, method)(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
