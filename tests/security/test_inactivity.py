"""Inactive users: activity tracking, nightly deactivation, refusal at sign-in, warnings."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, User, UserSession
from accounts.roles import Role
from security import inactivity
from security.inactivity import deactivate_inactive_users, warn_soon_inactive_users
from security.models import AuditEvent, SecurityPolicy
from tests.conftest import PASSWORD, make_user, work_in

NOW = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)


def set_last_active(user, when):
    User.objects.filter(pk=user.pk).update(last_active_at=when)


def add_idle_users(entity, count, prefix="idle"):
    """`count` guests of `entity` idle for a year (no password: the job never signs in)."""
    users = User.objects.bulk_create(
        User(email=f"{prefix}-{n}@acme.example", last_active_at=NOW - timedelta(days=365))
        for n in range(count)
    )
    Membership.objects.bulk_create(
        Membership(user=user, entity=entity, role=Role.GUEST) for user in users
    )
    return [user.pk for user in users]


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


def test_each_batch_costs_the_same_queries_however_many_users_it_holds(six_months, monkeypatch):
    """Two batches of 2 (and 1) users, then two of 20 (and 10): the same queries. A query
    per user, or per user id in a batch, would make the second run cost more."""

    def run_with(count, batch):
        monkeypatch.setattr(inactivity, "BATCH", batch)
        ids = add_idle_users(six_months.a, count, prefix=f"idle-{count}")
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
            assert deactivate_inactive_users() == count
        assert User.objects.filter(pk__in=ids, is_active=False).count() == count
        assert AuditEvent.objects.filter(target_id__in=[str(pk) for pk in ids]).count() == count
        return [q["sql"] for q in queries]

    small, large = run_with(3, 2), run_with(30, 20)
    assert len(small) == len(large)
    if connection.vendor == "postgresql":
        # One statement per batch claims, deactivates, ends sessions and audits.
        work = [sql for sql in large if "security_auditevent" in sql]
        assert len(work) == 2
        assert all("SKIP LOCKED" in sql and "accounts_usersession" in sql for sql in work)


def test_a_batch_rechecks_its_users_when_it_claims_them(six_months, monkeypatch):
    """The job reads who is over the limit once, then works in batches: a user who signs
    in, or is deactivated at sign-in, in between is left alone (and audited once)."""
    back, refused, idle = (six_months.users[r] for r in (Role.GUEST, Role.SALES, Role.COLLECTOR))
    for user in (back, refused, idle):
        set_last_active(user, NOW - timedelta(days=400))
    deactivate_batch = inactivity._deactivate_batch

    def meanwhile(user_ids, **kwargs):
        assert {back.pk, refused.pk, idle.pk} <= set(user_ids)
        set_last_active(back, NOW)
        inactivity.deactivate_if_over_limit(User.objects.get(pk=refused.pk), NOW)
        return deactivate_batch(user_ids, **kwargs)

    monkeypatch.setattr(inactivity, "_deactivate_batch", meanwhile)
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == 1
    assert User.objects.get(pk=back.pk).is_active
    assert not User.objects.get(pk=idle.pk).is_active
    deactivated = AuditEvent.objects.filter(action="user.deactivated")
    assert sorted(deactivated.values_list("target_id", flat=True)) == sorted(
        [str(refused.pk), str(idle.pk)]
    )


def test_job_audit_rows_are_those_of_a_deactivation_at_sign_in(six_months):
    """The job (one SQL statement per batch on PostgreSQL) writes the same audit row as
    the ORM path used at sign-in and on SQLite, field for field."""
    guest, sales = six_months.users[Role.GUEST], six_months.users[Role.SALES]
    set_last_active(guest, NOW - timedelta(days=400))
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == 1
    data = {"limit_months": 6, "set_by": "Acme Norge AS (entity-level)"}
    inactivity._deactivate([sales.pk], now=NOW, reason="inactivity", data=data)

    def row(user):
        event = AuditEvent.objects.get(action="user.deactivated", target_id=str(user.pk))
        values = {f.attname: getattr(event, f.attname) for f in AuditEvent._meta.concrete_fields}
        del values["id"]
        assert values.pop("target_id") == str(user.pk)
        assert values.pop("target_label") == user.email
        return values

    assert row(guest) == row(sales)
    assert row(guest) == {
        "created_at": NOW,
        "actor_id": None,
        "actor_label": "",
        "entity_id": None,
        "entity_group_id": None,
        "action": "user.deactivated",
        "target_type": "accounts.user",
        "data": {"reason": "inactivity", **data},
        "ip": None,
    }
    for user in (guest, sales):
        assert User.objects.filter(pk=user.pk, is_active=False, deactivated_at=NOW).exists()


def test_a_long_email_is_cut_to_the_audit_label_length(six_months):
    email = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 50}.example"
    user = make_user(email)
    Membership.objects.create(user=user, entity=six_months.a, role=Role.GUEST)
    set_last_active(user, NOW - timedelta(days=400))
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == 1
    event = AuditEvent.objects.get(action="user.deactivated", target_id=str(user.pk))
    assert len(email) > 200 and event.target_label == email[:200]


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


def test_a_warning_is_emailed_once_a_week_before(six_months, django_capture_on_commit_callbacks):
    guest, sales = six_months.users[Role.GUEST], six_months.users[Role.SALES]
    set_last_active(guest, datetime(2026, 3, 20, 2, 0, tzinfo=UTC))  # 5 days left
    set_last_active(sales, datetime(2026, 4, 1, 2, 0, tzinfo=UTC))  # 17 days left
    # Each warning is queued in the outbox and sent by the task once the job commits.
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert warn_soon_inactive_users() == 1
        assert warn_soon_inactive_users() == 0
    assert [m.to for m in mail.outbox] == [[guest.email]]
    assert "2026-09-20" in mail.outbox[0].body


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) need PostgreSQL; CI runs this on PostgreSQL")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch", [inactivity.BATCH, 4])
def test_two_runs_at_once_deactivate_and_audit_each_user_once(world, monkeypatch, batch):
    """With batches of 4 the two runs interleave over several batches each: each claims
    only what the other does not hold, and together they leave no one behind."""
    postgresql_only()
    monkeypatch.setattr(inactivity, "BATCH", batch)
    SecurityPolicy.objects.create(entity=world.a, inactivity_limit_months=6)
    idle = add_idle_users(world.a, 30)
    for pk in idle[:5]:
        UserSession.objects.create(
            session_key=f"session-{pk}", session_data="", expire_date=NOW, user_id=pk
        )
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
    targets = AuditEvent.objects.filter(action="user.deactivated").values_list("target_id")
    assert sorted(int(t) for (t,) in targets) == sorted(idle)
    assert not UserSession.objects.filter(user_id__in=idle).exists()


@pytest.mark.django_db(transaction=True)
def test_the_job_skips_a_user_another_transaction_holds_instead_of_waiting(world):
    postgresql_only()
    SecurityPolicy.objects.create(entity=world.a, inactivity_limit_months=6)
    idle = add_idle_users(world.a, 3)
    held, release = threading.Event(), threading.Event()

    def hold_row():
        try:
            with transaction.atomic():
                User.objects.select_for_update().get(pk=idle[0])
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_row)
    holder.start()
    try:
        assert held.wait(timeout=10)
        with connection.cursor() as cursor:
            # Were the job to wait for the lock, this fails it instead of hanging.
            cursor.execute("SET lock_timeout = '5s'")
        with time_machine.travel(NOW, tick=False):
            assert deactivate_inactive_users() == 2
    finally:
        release.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert User.objects.get(pk=idle[0]).is_active
    with time_machine.travel(NOW, tick=False):
        assert deactivate_inactive_users() == 1
    assert AuditEvent.objects.filter(action="user.deactivated").count() == 3
