"""Lockouts (security.lockouts): an account is blocked for 1 hour after 5 failed sign-ins,
an IP address for 24 hours after 10 failed sign-ins over any usernames. Every attempt goes
through the real login page, by a fresh browser, with the clock frozen."""

import re
import threading
from datetime import datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from accounts.roles import Role
from security.models import AuditEvent, LoginThrottle
from tests.conftest import PASSWORD, make_user, work_in
from tests.hashers import COUNTING_HASHERS, CountingMD5PasswordHasher

Kind = LoginThrottle.Kind

LOGIN_URL = "/accounts/login/"
LOGIN_ERROR = "That email and password do not match an active account."
LOCKOUT = "Too many failed sign-in attempts."
REFUSED = "auth.login.refused_blocked"
WRONG = "Wrong-Battery-17!"
IP = "203.0.113.10"
OTHER_IP = "198.51.100.20"
THIRD_IP = "192.0.2.30"
ACCOUNT_BLOCK = timedelta(hours=1)
ADDRESS_BLOCK = timedelta(hours=24)


def start():
    """A whole hour a week ahead (the users of `world` are created at the real time)."""
    return (timezone.now() + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)


def post_login(username, password, ip=IP, client=None, **extra):
    client = client or Client()
    return client.post(
        LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra
    )


def attempt_with_response(username, password, ip=IP, **extra):
    refusals = AuditEvent.objects.filter(action=REFUSED).count()
    response = post_login(username, password, ip, **extra)
    blocked = AuditEvent.objects.filter(action=REFUSED).count() > refusals
    if response.status_code == 302:
        assert not blocked
        return "signed in", response
    if blocked:
        assert response.status_code == 429
        assert "Too many failed sign-in attempts." in response.content.decode()
        return "blocked", response
    assert response.status_code == 200
    assert LOGIN_ERROR in response.content.decode()
    return "wrong", response


def attempt(username, password, ip=IP, **extra):
    """One sign-in by a fresh browser: "signed in", "wrong" (the password was checked and
    refused) or "blocked" (refused by the lockout)."""
    return attempt_with_response(username, password, ip, **extra)[0]


def fail(username, times, ip=IP):
    for _ in range(times):
        assert attempt(username, WRONG, ip) == "wrong"


def block_address(ip, prefix="ghost"):
    """Ten failures from `ip` for ten unknown accounts."""
    for number in range(10):
        fail(f"{prefix}{number}@acme.example", 1, ip=ip)


def failures(kind, key):
    row = LoginThrottle.objects.filter(kind=kind, key=key).first()
    return row.failures if row else 0


def alert(response):
    match = re.search(r'role="alert">(.*?)</div>', response.content.decode(), re.S)
    return match.group(1).strip() if match else None


@pytest.fixture
def verify_calls():
    """How many passwords the counting hasher has checked (with COUNTING_HASHERS)."""
    CountingMD5PasswordHasher.reset()
    yield lambda: CountingMD5PasswordHasher.verify_calls
    CountingMD5PasswordHasher.reset()


# --- The account counter ---------------------------------------------------------------


@pytest.mark.parametrize("username", ["sales@acme.example", "ghost@acme.example"])
def test_the_attempt_that_starts_a_block_says_so(world, username):
    t0 = start()
    with time_machine.travel(t0, tick=False):
        for _ in range(4):
            outcome, fourth = attempt_with_response(username, WRONG)
            assert outcome == "wrong"
        assert LOCKOUT not in fourth.content.decode()
        outcome, fifth = attempt_with_response(username, WRONG)
    assert outcome == "wrong"  # its password was checked and refused, as before
    until = timezone.localtime(t0 + ACCOUNT_BLOCK)
    content = fifth.content.decode()
    assert LOGIN_ERROR in content
    assert f"{LOCKOUT} Try again after {until:%H:%M} on {until:%Y-%m-%d}." in content


def test_five_wrong_passwords_block_the_account_for_an_hour_from_the_fifth(world):
    email = world.users[Role.SALES].email
    with time_machine.travel(start(), tick=False) as clock:
        fail(email, 4)
        clock.shift(timedelta(minutes=20))
        fail(email, 1)
        fifth = timezone.now()  # the hour counts from here, not from the first failure
        assert attempt(email, PASSWORD) == "blocked"
        clock.move_to(fifth + timedelta(minutes=59, seconds=59))
        assert attempt(email, PASSWORD) == "blocked"
        clock.move_to(fifth + timedelta(minutes=60, seconds=1))
        assert attempt(email, PASSWORD) == "signed in"
    assert failures(Kind.ACCOUNT, email) == 0


@override_settings(PASSWORD_HASHERS=COUNTING_HASHERS)
@pytest.mark.parametrize("blocked", ["account", "address"])
def test_an_attempt_during_a_block_costs_two_reads_and_one_event(
    world, blocked, verify_calls, django_assert_num_queries
):
    """A blocked attacker's retries stay cheap: the block is read without a lock, the
    account named is looked up for the refusal's audit event, which is recorded, and no
    password or session is looked at."""
    email = world.users[Role.SALES].email
    with time_machine.travel(start(), tick=False):
        if blocked == "account":
            fail(email, 5)
        else:
            block_address(IP)
        checked = verify_calls()
        events = AuditEvent.objects.count()
        with connection.execute_wrapper(_refuse_locks), django_assert_num_queries(3):
            response = post_login(email, PASSWORD)
    assert response.status_code == 429
    assert LOCKOUT in response.content.decode()
    assert verify_calls() == checked
    assert AuditEvent.objects.count() == events + 1
    assert AuditEvent.objects.first().action == REFUSED  # newest first


@pytest.mark.parametrize("blocked", ["account", "address"])
def test_the_entity_admin_sees_the_refused_attempts_on_their_user(world, client, blocked):
    person = world.users[Role.SALES]
    with time_machine.travel(start(), tick=False):
        ghost_ip = OTHER_IP if blocked == "account" else IP
        if blocked == "account":
            fail(person.email, 5)
            fail("ghost-user@acme.example", 5, ip=ghost_ip)
        else:
            block_address(IP)
        assert attempt(person.email, PASSWORD) == "blocked"
        assert attempt("ghost-user@acme.example", PASSWORD, ip=ghost_ip) == "blocked"
    refusal = AuditEvent.objects.get(action=REFUSED, data__username=person.email)
    assert (refusal.target_type, refusal.target_id) == ("accounts.user", str(person.pk))
    ghost = AuditEvent.objects.get(action=REFUSED, data__username="ghost-user@acme.example")
    assert (ghost.target_id, ghost.target_label) == ("", "ghost-user@acme.example")

    page = work_in(client, world.users[Role.ADMIN], world.a).get("/audit/", {"action": REFUSED})
    assert page.status_code == 200
    assert person.email in page.content.decode()
    other = work_in(Client(), world.b_admin, world.b).get("/audit/", {"action": REFUSED})
    assert person.email not in other.content.decode()


def _refuse_locks(execute, sql, params, many, context):
    assert "FOR UPDATE" not in sql, "a refused attempt must not lock the counters"
    return execute(sql, params, many, context)


@pytest.mark.parametrize("username", ["sales@acme.example", "ghost@acme.example"])
def test_a_blocked_account_is_answered_429_saying_when_to_try_again(world, username):
    t0 = start()
    with time_machine.travel(t0, tick=False):
        fail(username, 5)
        client = Client()
        response = post_login(username, PASSWORD, client=client)
    until = timezone.localtime(t0 + ACCOUNT_BLOCK)
    content = response.content.decode()
    assert response.status_code == 429
    assert LOCKOUT in content
    assert f"Try again after {until:%H:%M} on {until:%Y-%m-%d}." in content
    assert "_auth_user_id" not in client.session


@override_settings(PASSWORD_HASHERS=COUNTING_HASHERS)
def test_attempts_during_a_block_are_refused_unchecked_and_do_not_extend_it(world, verify_calls):
    email = world.users[Role.SALES].email
    t0 = start()
    with time_machine.travel(t0, tick=False) as clock:
        fail(email, 5)
        assert verify_calls() == 5
        clock.move_to(t0 + timedelta(minutes=30))
        assert attempt(email, WRONG) == "blocked"
        assert attempt(email, PASSWORD) == "blocked"
        clock.move_to(t0 + timedelta(minutes=59))
        assert attempt(email, WRONG) == "blocked"
        assert verify_calls() == 5  # no refused attempt had its password checked
        refusals = AuditEvent.objects.filter(action=REFUSED)
        ends = {datetime.fromisoformat(event.data["until"]) for event in refusals}
        assert ends == {t0 + ACCOUNT_BLOCK}
        clock.move_to(t0 + ACCOUNT_BLOCK + timedelta(seconds=1))
        assert attempt(email, PASSWORD) == "signed in"
        assert verify_calls() == 6
    assert failures(Kind.IP, IP) == 5  # refused attempts count against the address neither


def test_usernames_share_one_counter_whatever_their_case_and_surrounding_spaces(world):
    variants = [
        "Admin@Acme.example ",
        "ADMIN@acme.example",
        "admin@acme.example",
        "  aDmIn@ACME.EXAMPLE",
        "admin@acme.example",
    ]
    with time_machine.travel(start(), tick=False):
        for username in variants:
            assert attempt(username, WRONG) == "wrong"
        assert attempt("admin@acme.example", PASSWORD) == "blocked"
        assert attempt(" Admin@ACME.example", PASSWORD, ip=OTHER_IP) == "blocked"
    counters = LoginThrottle.objects.filter(kind=Kind.ACCOUNT).values_list("key", "failures")
    assert list(counters) == [("admin@acme.example", 5)]


def test_counters_stored_by_other_code_are_read_with_their_times(world):
    """Rows written through the ORM (an admin lifting a block, an import, a restore) are
    read by the sign-in's own statements with the same times, on every database."""
    email = world.users[Role.SALES].email
    t0 = start()
    with time_machine.travel(t0, tick=False) as clock:
        LoginThrottle.objects.create(
            kind=Kind.ACCOUNT, key=email, failures=5, last_failure_at=t0 - timedelta(minutes=10)
        )
        LoginThrottle.objects.create(
            kind=Kind.IP, key=OTHER_IP, failures=9, last_failure_at=t0 - ADDRESS_BLOCK
        )
        response = post_login(email, PASSWORD, ip=OTHER_IP)
        until = timezone.localtime(t0 + timedelta(minutes=50))
        assert response.status_code == 429
        assert f"Try again after {until:%H:%M} on {until:%Y-%m-%d}." in response.content.decode()
        clock.move_to(t0 + timedelta(minutes=51))
        # The address's 9 failures aged out a day ago: this attempt starts it at 1 again.
        assert attempt(email, PASSWORD, ip=OTHER_IP) == "signed in"
    assert failures(Kind.ACCOUNT, email) == 0
    assert failures(Kind.IP, OTHER_IP) == 0


def test_a_success_resets_only_that_accounts_counter(world):
    mine, theirs = world.users[Role.SALES].email, world.users[Role.COLLECTOR].email
    with time_machine.travel(start(), tick=False):
        fail(mine, 4, ip=IP)
        fail(theirs, 4, ip=IP)
        assert attempt(mine, PASSWORD, ip=IP) == "signed in"
        assert failures(Kind.ACCOUNT, mine) == 0
        assert failures(Kind.ACCOUNT, theirs) == 4
        assert failures(Kind.IP, IP) == 8  # the success gave back only its own attempt

        fail(mine, 4, ip=OTHER_IP)  # 4 + success + 4: not blocked
        fail(theirs, 1, ip=OTHER_IP)  # the other account's 5th failure
        assert attempt(theirs, PASSWORD, ip=THIRD_IP) == "blocked"

        fail("ghost@acme.example", 2, ip=IP)  # the address's 9th and 10th failures
        assert attempt(mine, PASSWORD, ip=IP) == "blocked"
        assert attempt(mine, PASSWORD, ip=THIRD_IP) == "signed in"


# --- The address counter ---------------------------------------------------------------


def test_ten_failures_over_any_usernames_block_the_address_for_24_hours(world):
    roles = [Role.ADMIN, Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN]
    existing = [world.users[role].email for role in roles]
    unknown = [f"ghost{number}@acme.example" for number in range(5)]
    victim = world.users[Role.GUEST].email
    with time_machine.travel(start(), tick=False) as clock:
        for known, ghost in zip(existing, unknown, strict=True):
            fail(known, 1)
            fail(ghost, 1)
            clock.shift(timedelta(minutes=1))
        tenth = timezone.now() - timedelta(minutes=1)  # the day counts from the 10th failure
        assert attempt(victim, PASSWORD) == "blocked"
        assert attempt(victim, PASSWORD, ip=OTHER_IP) == "signed in"
        clock.move_to(tenth + ADDRESS_BLOCK - timedelta(seconds=1))
        assert attempt(victim, PASSWORD) == "blocked"
        assert attempt("ghost9@acme.example", WRONG) == "blocked"
        clock.move_to(tenth + ADDRESS_BLOCK + timedelta(seconds=1))
        assert attempt(victim, PASSWORD) == "signed in"
    assert failures(Kind.IP, IP) == 0


def test_a_blocked_address_is_answered_429_saying_when_to_try_again(world):
    t0 = start()
    with time_machine.travel(t0, tick=False):
        block_address(IP)
        response = post_login(world.users[Role.GUEST].email, PASSWORD)
    until = timezone.localtime(t0 + ADDRESS_BLOCK)
    assert response.status_code == 429
    assert f"{LOCKOUT} Try again after {until:%H:%M} on {until:%Y-%m-%d}." in (
        response.content.decode()
    )


def test_a_success_does_not_keep_the_addresss_old_failures_alive(world):
    t0 = start()
    with time_machine.travel(t0, tick=False) as clock:
        for number in range(9):
            fail(f"ghost{number}@acme.example", 1)
        clock.move_to(t0 + timedelta(hours=23))
        assert attempt(world.users[Role.SALES].email, PASSWORD) == "signed in"
        clock.move_to(t0 + ADDRESS_BLOCK + timedelta(minutes=1))  # 24 h without a failure
        fail("late@acme.example", 1)
        assert failures(Kind.IP, IP) == 1
        assert attempt(world.users[Role.GUEST].email, PASSWORD) == "signed in"


def test_a_blocked_unknown_account_is_answered_like_a_blocked_existing_one(world):
    with time_machine.travel(start(), tick=False):
        fail("sales@acme.example", 5, ip=IP)
        fail("ghost@acme.example", 5, ip=OTHER_IP)
        existing = attempt_with_response("sales@acme.example", PASSWORD, ip=IP)
        unknown = attempt_with_response("ghost@acme.example", PASSWORD, ip=OTHER_IP)
    assert existing[0] == unknown[0] == "blocked"
    assert existing[1].status_code == unknown[1].status_code
    assert alert(existing[1]) is not None
    assert alert(existing[1]) == alert(unknown[1])


def test_a_forged_forwarded_header_does_not_dodge_the_address_counter(world):
    with time_machine.travel(start(), tick=False):
        for number in range(10):
            forged = {"HTTP_X_FORWARDED_FOR": f"198.51.100.{number}"}
            assert attempt(f"ghost{number}@acme.example", WRONG, IP, **forged) == "wrong"
        forged = {"HTTP_X_FORWARDED_FOR": "198.51.100.200"}
        assert attempt(world.users[Role.GUEST].email, PASSWORD, IP, **forged) == "blocked"
    assert failures(Kind.IP, IP) == 10
    assert not LoginThrottle.objects.filter(kind=Kind.IP, key__startswith="198.51.100.").exists()


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXY_NETWORKS=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(world):
    proxy = "10.0.0.2"
    victim = world.users[Role.GUEST].email
    via = {"HTTP_X_FORWARDED_FOR": f"6.6.6.6, {IP}"}
    with time_machine.travel(start(), tick=False):
        for number in range(10):
            assert attempt(f"ghost{number}@acme.example", WRONG, proxy, **via) == "wrong"
        assert attempt(victim, PASSWORD, proxy, **via) == "blocked"
        other = {"HTTP_X_FORWARDED_FOR": f"6.6.6.6, {OTHER_IP}"}
        assert attempt(victim, PASSWORD, proxy, **other) == "signed in"
    assert failures(Kind.IP, IP) == 10
    assert failures(Kind.IP, proxy) == 0


# --- Notifications and the audit log ---------------------------------------------------


def test_the_owner_gets_one_email_when_their_account_becomes_blocked(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    user = world.users[Role.SALES]
    t0 = start()
    # The notice is queued in the outbox and sent by the task once the request commits.
    sent_after_commit = django_capture_on_commit_callbacks
    with time_machine.travel(t0, tick=False):
        with sent_after_commit(execute=True):
            fail(user.email, 4)
        assert mailoutbox == []
        with sent_after_commit(execute=True):
            fail(user.email, 1)
        assert len(mailoutbox) == 1
        with sent_after_commit(execute=True):
            assert attempt(user.email, WRONG) == "blocked"
            assert attempt(user.email, PASSWORD) == "blocked"
            fail("ghost@acme.example", 5, ip=OTHER_IP)
            assert attempt("ghost@acme.example", WRONG, ip=OTHER_IP) == "blocked"
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [user.email]
    assert message.subject == "Your account was blocked after failed sign-ins"
    until = timezone.localtime(t0 + ACCOUNT_BLOCK)
    assert f"blocked until {until:%Y-%m-%d %H:%M}" in message.body

    blocked = AuditEvent.objects.filter(action="auth.account.blocked").order_by("id")
    assert [(event.target_id, event.target_label, event.ip) for event in blocked] == [
        (str(user.pk), user.email, IP),
        ("", "ghost@acme.example", OTHER_IP),
    ]
    refusals = AuditEvent.objects.filter(action=REFUSED).order_by("id")
    assert [(event.data["username"], event.ip) for event in refusals] == [
        (user.email, IP),
        (user.email, IP),
        ("ghost@acme.example", OTHER_IP),
    ]
    assert {datetime.fromisoformat(event.data["until"]) for event in refusals} == {
        t0 + ACCOUNT_BLOCK
    }


def test_an_address_block_is_recorded_once(world, mailoutbox):
    t0 = start()
    with time_machine.travel(t0, tick=False):
        block_address(IP)
        assert attempt(world.users[Role.GUEST].email, PASSWORD) == "blocked"
        assert attempt("ghost0@acme.example", WRONG) == "blocked"
    event = AuditEvent.objects.get(action="auth.ip.blocked")
    assert (event.target_label, event.ip, event.data) == (IP, IP, {"ip": IP})
    refusals = AuditEvent.objects.filter(action=REFUSED)
    assert refusals.count() == 2
    assert {datetime.fromisoformat(e.data["until"]) for e in refusals} == {t0 + ADDRESS_BLOCK}
    assert not AuditEvent.objects.filter(action="auth.account.blocked").exists()
    assert mailoutbox == []


# --- Lifting blocks --------------------------------------------------------------------


def test_an_admin_sees_and_lifts_the_block_of_a_user_of_their_entity(world, client):
    admin, person = world.users[Role.ADMIN], world.users[Role.SALES]
    t0 = start()
    with time_machine.travel(t0, tick=False):
        fail(person.email, 5)
        work_in(client, admin, world.a)
        page = client.get("/settings/users/").content.decode()
        until = timezone.localtime(t0 + ACCOUNT_BLOCK)
        assert page.count("Blocked until") == 1
        assert f"Blocked until {until:%H:%M}" in page
        assert f'action="/settings/users/{person.pk}/unblock/"' in page

        response = client.post(f"/settings/users/{person.pk}/unblock/")
        assert (response.status_code, response.url) == (302, "/settings/users/")
        assert "Blocked until" not in client.get("/settings/users/").content.decode()
        assert attempt(person.email, PASSWORD) == "signed in"
    event = AuditEvent.objects.get(action="auth.account.unblocked")
    assert (event.actor, event.entity, event.target_label) == (admin, world.a, person.email)


@pytest.mark.parametrize("stranger", ["b_admin", "outsider"])
def test_an_admin_cannot_lift_the_block_of_another_entitys_user(world, client, stranger):
    person = getattr(world, stranger)
    with time_machine.travel(start(), tick=False):
        fail(person.email, 5)
        work_in(client, world.users[Role.ADMIN], world.a)
        assert person.email not in client.get("/settings/users/").content.decode()
        assert client.post(f"/settings/users/{person.pk}/unblock/").status_code == 404
        assert attempt(person.email, PASSWORD) == "blocked"
    assert not AuditEvent.objects.filter(action="auth.account.unblocked").exists()


def test_only_the_main_admin_lifts_the_block_of_the_main_admin(world, client):
    """An admin of one entity must not undo the lockout of an account that reaches others."""
    main_admin = world.main_admin
    with time_machine.travel(start(), tick=False):
        fail(main_admin.email, 5)
        work_in(client, world.users[Role.ADMIN], world.a)
        page = client.get("/settings/users/").content.decode()
        assert "Blocked until" in page
        assert f'action="/settings/users/{main_admin.pk}/unblock/"' not in page
        response = client.post(f"/settings/users/{main_admin.pk}/unblock/", follow=True)
        assert "also works in entities you do not administer" in response.content.decode()
        assert attempt(main_admin.email, PASSWORD) == "blocked"
        assert not AuditEvent.objects.filter(action="auth.account.unblocked").exists()

        other_main_admin = make_user("second-main-admin@acme.example")
        other_main_admin.group_memberships.create(group=world.group, role=Role.MAIN_ADMIN)
        work_in(client, other_main_admin, world.a)
        client.post(f"/settings/users/{main_admin.pk}/unblock/")
        assert attempt(main_admin.email, PASSWORD) == "signed in"


def test_address_blocks_are_shown_to_and_lifted_by_platform_operators_only(world):
    victim = world.users[Role.GUEST].email
    with time_machine.travel(start(), tick=False):
        block_address(IP)
        for admin in (world.users[Role.ADMIN], world.main_admin):
            tenant_admin = work_in(Client(), admin, world.a)
            assert IP not in tenant_admin.get("/settings/users/").content.decode()
            assert tenant_admin.get("/settings/ip-blocks/").status_code == 403
            assert tenant_admin.post("/settings/ip-blocks/", {"ip": IP}).status_code == 403
        assert attempt(victim, PASSWORD) == "blocked"

        operator = make_user("operator@platform.example", is_staff=True)
        staff = Client()
        staff.force_login(operator)
        page = staff.get("/settings/ip-blocks/")
        assert page.status_code == 200
        assert f"<td>{IP}</td><td>10</td>" in page.content.decode()
        response = staff.post("/settings/ip-blocks/", {"ip": IP})
        assert (response.status_code, response.url) == (302, "/settings/ip-blocks/")
        page = staff.get("/settings/ip-blocks/").content.decode()
        assert f"The block on {IP} was lifted." in page
        assert f"<td>{IP}</td>" not in page and "No address is blocked." in page
        assert attempt(victim, PASSWORD) == "signed in"
    event = AuditEvent.objects.get(action="auth.ip.unblocked")
    assert (event.actor, event.target_label) == (operator, IP)


def test_axes_reset_commands_lift_blocks(world):
    person = world.users[Role.SALES]
    victim = world.users[Role.GUEST].email
    with time_machine.travel(start(), tick=False):
        fail(person.email, 5, ip=IP)
        block_address(OTHER_IP)
        assert attempt(person.email, PASSWORD, ip=THIRD_IP) == "blocked"
        assert attempt(victim, PASSWORD, ip=OTHER_IP) == "blocked"

        out = StringIO()
        call_command("axes_reset_username", " SALES@Acme.example", stdout=out)
        assert out.getvalue().strip() == "1 attempts removed."
        assert attempt(person.email, PASSWORD, ip=THIRD_IP) == "signed in"
        assert attempt(victim, PASSWORD, ip=OTHER_IP) == "blocked"  # the address still is

        out = StringIO()
        call_command("axes_reset_ip", OTHER_IP, stdout=out)
        assert out.getvalue().strip() == "1 attempts removed."
        assert attempt(victim, PASSWORD, ip=OTHER_IP) == "signed in"

        out = StringIO()
        call_command("axes_reset_ip", OTHER_IP, stdout=out)
        assert out.getvalue().strip() == "No attempts found."
    lifted = AuditEvent.objects.filter(action__endswith=".unblocked").order_by("id")
    assert [(event.action, event.target_label) for event in lifted] == [
        ("auth.account.unblocked", person.email),
        ("auth.ip.unblocked", OTHER_IP),
    ]


# --- Concurrency -----------------------------------------------------------------------

THREADS = 30


def wrong_passwords_at_once(email):
    """THREADS browsers post a wrong password for `email` at the same moment, each from its
    own address, so that only the account counter can refuse them. Returns the statuses."""
    barrier = threading.Barrier(THREADS, timeout=30)
    statuses, errors = [], []
    lock = threading.Lock()

    def sign_in(number):
        try:
            client = Client()
            barrier.wait()
            response = post_login(email, WRONG, ip=f"10.1.0.{number + 1}", client=client)
            with lock:
                statuses.append(response.status_code)
        except Exception as error:  # reported below, in the test's thread
            with lock:
                errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "sign-ins still running"
    assert errors == []
    assert len(statuses) == THREADS
    return statuses


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: row locks (SELECT ... FOR UPDATE) and concurrent "
    "connections; SQLite serialises every writer, so there is no race to test",
)


@postgresql_only
@override_settings(PASSWORD_HASHERS=COUNTING_HASHERS)
def test_simultaneous_wrong_passwords_count_exactly_five(transactional_db, verify_calls):
    email = make_user("target@acme.example").email
    verify_calls_before = verify_calls()
    statuses = wrong_passwords_at_once(email)
    assert set(statuses) <= {200, 429}
    assert failures(Kind.ACCOUNT, email) == 5
    assert verify_calls() - verify_calls_before == 5
    # Every attempt leaves exactly one event: a checked wrong password, or a refusal.
    assert AuditEvent.objects.filter(action="auth.login.failed").count() == 5
    assert AuditEvent.objects.filter(action=REFUSED).count() == THREADS - 5
    assert AuditEvent.objects.filter(action="auth.account.blocked").count() == 1
    ip_counts = LoginThrottle.objects.filter(kind=Kind.IP).values_list("failures", flat=True)
    assert sum(ip_counts) == 5
    assert attempt(email, PASSWORD, ip=OTHER_IP) == "blocked"
    assert verify_calls() - verify_calls_before == 5


@postgresql_only
def test_simultaneous_wrong_passwords_get_five_wrong_password_answers_and_25_429(
    transactional_db,
):
    email = make_user("target@acme.example").email
    statuses = wrong_passwords_at_once(email)
    assert sorted(statuses) == [200] * 5 + [429] * (THREADS - 5)
    assert post_login(email, PASSWORD, ip=OTHER_IP).status_code == 429
