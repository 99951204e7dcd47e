"""Inactive users: activity tracking, nightly deactivation, refusal at sign-in, warnings."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, User, UserSession
from accounts.roles import Role
from security.inactivity import deactivate_inactive_users, warn_soon_inactive_users
from security.models import AuditEvent, SecurityPolicy
from tests.conftest import PASSWORD, make_user, work_in

NOW = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)


def set_last_active(user, when):
    User.objects.filter(pk=user.pk).update(last_active_at=when)


@pytest.fixture
def six_months(world):
    SecurityPolicy.objects.create(entity=world.a, inactivity_limit_months=6)
    return world


def test_activity_is_written_at_most_every_five_minutes(world, client):
    user = world.users[Role.GUEST]
    with time_machine.travel(NOW, tick=False) as clock:
        set_last_active(user, NOW - timedelta(hours=1))
        work_in(client, user, world.a)
        client.get("/")
        assert User.objects.get(pk=user.pk).last_active_at == NOW
        clock.move_to(NOW + timedelta(minutes=4, seconds=59))
        client.get("/")
        assert User.objects.get(pk=user.pk).last_active_at == NOW
        clock.move_to(NOW + timedelta(minutes=5))
        client.get("/")
        assert User.objects.get(pk=user.pk).last_active_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    "offset,deactivated", [(timedelta(seconds=-1), True), (timedelta(0), False)]
)
def test_the_job_deactivates_exactly_past_the_limit(six_months, offset, deactivated):
    user = six_months.users[Role.GUEST]
    set_last_active(user, datetime(2026, 3, 15, 2, 0, tzinfo=UTC) + offset)
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == int(deactivated)
    assert User.objects.get(pk=user.pk).is_active is not deactivated


def test_a_user_who_never_signed_in_counts_from_creation(six_months):
    with time_machine.travel(NOW - timedelta(days=200), tick=False):
        never = make_user("never@acme.example")
        Membership.objects.create(user=never, entity=six_months.a, role=Role.GUEST)
    with time_machine.travel(NOW, tick=False):
        deactivate_inactive_users()
    assert not User.objects.get(pk=never.pk).is_active


def test_the_job_ends_sessions_audits_once_and_is_idempotent(six_months):
    user = six_months.users[Role.GUEST]
    client = work_in(Client(), user, six_months.a)
    set_last_active(user, NOW - timedelta(days=400))
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == 1
        assert deactivate_inactive_users() == 0
    assert not UserSession.objects.filter(user_id=user.pk).exists()
    assert client.get("/").status_code == 302
    events = AuditEvent.objects.filter(action="user.deactivated", target_id=str(user.pk))
    assert events.count() == 1
    assert events.get().data == {
        "reason": "inactivity",
        "limit_months": 6,
        "set_by": "Acme Norge AS (entity-level)",
    }


def test_a_multi_level_limit_reaches_every_entity_of_the_access_only(world):
    SecurityPolicy.objects.create(group=world.group, inactivity_limit_months=3)
    for user in (world.users[Role.SALES], world.b_admin, world.outsider):
        set_last_active(user, NOW - timedelta(days=120))
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == 2
    assert not User.objects.get(pk=world.users[Role.SALES].pk).is_active
    assert not User.objects.get(pk=world.b_admin.pk).is_active
    assert User.objects.get(pk=world.outsider.pk).is_active


def test_the_job_is_set_based(six_months):
    def run_with(count):
        users = []
        for n in range(count):
            user = make_user(f"idle-{count}-{n}@acme.example")
            Membership.objects.create(user=user, entity=six_months.a, role=Role.GUEST)
            users.append(user)
        User.objects.filter(pk__in=[u.pk for u in users]).update(
            last_active_at=NOW - timedelta(days=365)
        )
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
            assert deactivate_inactive_users() == count
        return len(queries)

    assert run_with(3) == run_with(40)


def test_the_periodic_command_runs_the_job(six_months):
    set_last_active(six_months.users[Role.GUEST], NOW - timedelta(days=400))
    with time_machine.travel(NOW, tick=False):
        call_command("run_periodic_jobs", only=["deactivate-inactive-users"])
    assert not User.objects.get(pk=six_months.users[Role.GUEST].pk).is_active


def test_sign_in_is_refused_over_the_limit_before_the_job_ran(six_months, client):
    user = six_months.users[Role.GUEST]
    set_last_active(user, NOW - timedelta(days=190))
    with time_machine.travel(NOW, tick=False):
        response = client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 200
    assert "That email and password do not match an active account." in response.content.decode()
    assert not User.objects.get(pk=user.pk).is_active
    assert AuditEvent.objects.filter(action="user.deactivated", target_id=str(user.pk)).exists()


def test_sign_in_within_the_limit_works(six_months, client):
    user = six_months.users[Role.GUEST]
    set_last_active(user, NOW - timedelta(days=170))
    with time_machine.travel(NOW, tick=False):
        response = client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302


def test_an_admin_reactivates_a_user_who_then_survives_the_next_run(six_months, client):
    user = six_months.users[Role.GUEST]
    set_last_active(user, NOW - timedelta(days=400))
    with time_machine.travel(NOW, tick=False):
        deactivate_inactive_users()
        work_in(client, six_months.users[Role.ADMIN], six_months.a)
        listing = client.get("/settings/users/").content.decode()
        assert "Deactivated" in listing
        response = client.post(f"/settings/users/{user.pk}/reactivate/", follow=True)
        assert f"{user.email} can sign in again." in response.content.decode()
        assert deactivate_inactive_users() == 0
    assert User.objects.get(pk=user.pk).is_active
    assert AuditEvent.objects.filter(action="user.reactivated", target_id=str(user.pk)).exists()


@pytest.mark.parametrize("role", [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.GUEST])
def test_only_admins_open_the_users_page(world, client, role):
    assert work_in(client, world.users[role], world.a).get("/settings/users/").status_code == 403


def test_the_users_page_lists_only_the_entitys_people(world, client):
    content = work_in(client, world.users[Role.ADMIN], world.a).get("/settings/users/")
    text = content.content.decode()
    assert world.users[Role.GUEST].email in text and world.main_admin.email in text
    assert world.outsider.email not in text and world.b_admin.email not in text


def test_a_warning_is_emailed_once_a_week_before(six_months):
    guest, sales = six_months.users[Role.GUEST], six_months.users[Role.SALES]
    set_last_active(guest, datetime(2026, 3, 20, 2, 0, tzinfo=UTC))  # 5 days left
    set_last_active(sales, datetime(2026, 4, 1, 2, 0, tzinfo=UTC))  # 17 days left
    with time_machine.travel(NOW, tick=False):
        assert warn_soon_inactive_users() == 1
        assert warn_soon_inactive_users() == 0
    assert [m.to for m in mail.outbox] == [[guest.email]]
    assert "2026-09-20" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_deactivate_and_audit_each_user_once(world):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) need PostgreSQL; CI runs this on PostgreSQL")
    SecurityPolicy.objects.create(entity=world.a, inactivity_limit_months=6)
    idle = []
    for n in range(30):
        user = make_user(f"idle-{n}@acme.example")
        Membership.objects.create(user=user, entity=world.a, role=Role.GUEST)
        idle.append(user.pk)
    User.objects.filter(pk__in=idle).update(last_active_at=NOW - timedelta(days=400))
    results, barrier = [], threading.Barrier(2)

    def run():
        try:
            barrier.wait(timeout=10)
            with time_machine.travel(NOW, tick=False):
                results.append(deactivate_inactive_users())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(results) == 30
    assert User.objects.filter(pk__in=idle, is_active=False).count() == 30
    assert AuditEvent.objects.filter(action="user.deactivated").count() == 30
