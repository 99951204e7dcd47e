"""Fixed personas for every test: two entities in one multi-entity access, a third
unrelated entity, one user per role, and an outsider."""

import os
from dataclasses import dataclass, field

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM refuses to run
# there unless told that this is safe (it is: tests are single-threaded).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The fake Twilio server fixture (`fake_twilio`) for any test.
pytest_plugins = ["tests.fake_twilio"]

PASSWORD = "Correct-Horse-42!"


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def pytest_report_header(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return f"database: {engine}; redis: {'yes' if settings.REDIS_URL else 'no'}"


@pytest.fixture(scope="session", autouse=True)
def _require_postgres_when_asked():
    """In CI a missing PostgreSQL is a failure, never a silent SQLite run."""
    from django.conf import settings

    if _truthy("REQUIRE_POSTGRES") and "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.exit("REQUIRE_POSTGRES is set but DATABASE_URL is not PostgreSQL.", returncode=1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield


@dataclass
class World:
    group: object
    a: object  # entity in the multi-entity access
    b: object  # second entity in the same access
    c: object  # an unrelated entity
    users: dict = field(default_factory=dict)  # role value -> user of entity a
    main_admin: object = None  # main admin through the multi-entity access
    b_admin: object = None  # admin of b only
    outsider: object = None  # admin of c only
    nobody: object = None  # a user with no membership at all


def make_user(email, **extra):
    from accounts.models import User

    name = email.split("@")[0]
    return User.objects.create_user(email, password=PASSWORD, full_name=name, **extra)


@pytest.fixture
def world(db):
    from accounts.models import Entity, EntityGroup, GroupMembership, Membership
    from accounts.roles import Role

    group = EntityGroup.objects.create(name="Acme Group")
    a = Entity.objects.create(name="Acme Norge AS", slug="acme-norge", group=group)
    b = Entity.objects.create(name="Acme Sverige AB", slug="acme-sverige", group=group)
    c = Entity.objects.create(name="Other Company AS", slug="other")
    w = World(group=group, a=a, b=b, c=c)
    for role in Role:
        if role == Role.MAIN_ADMIN:
            continue
        user = make_user(f"{role.value.replace('_', '-')}@acme.example")
        Membership.objects.create(user=user, entity=a, role=role)
        w.users[role] = user
    w.main_admin = make_user("main-admin@acme.example")
    GroupMembership.objects.create(user=w.main_admin, group=group, role=Role.MAIN_ADMIN)
    w.users[Role.MAIN_ADMIN] = w.main_admin
    w.b_admin = make_user("admin@acme-sverige.example")
    Membership.objects.create(user=w.b_admin, entity=b, role=Role.ADMIN)
    w.outsider = make_user("admin@other.example")
    Membership.objects.create(user=w.outsider, entity=c, role=Role.ADMIN)
    w.nobody = make_user("nobody@nowhere.example")
    return w


def work_in(client, user, entity):
    """Log `user` in on `client` with `entity` as the current entity."""
    from accounts.tenancy import SESSION_ENTITY_KEY

    client.force_login(user)
    session = client.session
    session[SESSION_ENTITY_KEY] = entity.pk
    session.save()
    return client
