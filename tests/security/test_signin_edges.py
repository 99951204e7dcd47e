"""The edges of signing in (issue 18, items 1-6): attempts in flight never refuse a right
password, one counter per person however the address is typed, password reset limits
and its email, the session id on every change of privilege or context, every check of
a password counted, and a reset that takes the same time for any address."""

import re
import statistics
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from accounts.tenancy import SESSION_ENTITY_KEY
from security import sms
from security.lockouts import IN_FLIGHT_EXPIRY
from security.models import (
    AllowedNetwork,
    AuditEvent,
    LoginThrottle,
    SecurityNotice,
    SecurityPolicy,
)
from security.tasks import purge_login_throttles
from tests.conftest import PASSWORD, make_user, work_in
from tests.hashers import CountingMD5PasswordHasher
from tests.helpers import SETUP, VERIFY, code_at, pending_device, sign_in, signed_out, text

Kind = LoginThrottle.Kind

LOGIN_URL = "/accounts/login/"
CHANGE_URL = "/accounts/password/change/"
RESET_URL = "/accounts/password/reset/"
SENT_URL = "/accounts/password/reset/sent/"
LOCKOUT = "Too many failed sign-in attempts."
LOGIN_ERROR = "That email and password do not match an active account."
REFUSED = "auth.login.refused_blocked"
WRONG = "Wrong-Battery-17!"
NEW_PASSWORD = "Fresh-Passw0rd-2026!"
IP = "203.0.113.10"
OTHER_IP = "198.51.100.20"


def start():
    """A whole hour a week ahead (the users of `world` are created at the real time)."""
    return (timezone.now() + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)


def post_login(username, password, ip=IP, client=None, **extra):
    client = client or Client()
    return client.post(
        LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra
    )


def counter(kind, key):
    return LoginThrottle.objects.filter(kind=kind, key=key).first()


def failures(kind, key):
    row = counter(kind, key)
    return row.failures if row else 0


def new_events(since_id):
    return list(AuditEvent.objects.filter(id__gt=since_id).order_by("id"))


def last_event_id():
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: row locks (SELECT ... FOR UPDATE) and concurrent "
    "connections; SQLite serialises every writer, so there is no race to test",
)


# --- 1. Attempts in flight never refuse a right password -------------------------------


class GatedMD5PasswordHasher(CountingMD5PasswordHasher):
    """Counts each password check (as CountingMD5PasswordHasher) and holds it until the
    test opens the gate, so the test knows which attempts are in flight at once."""

    gate = threading.Event()
    entered = threading.Semaphore(0)

    def verify(self, password, encoded):
        GatedMD5PasswordHasher.entered.release()
        assert GatedMD5PasswordHasher.gate.wait(timeout=30), "the gate never opened"
        return super().verify(password, encoded)


GATED_HASHERS = ["tests.security.test_signin_edges.GatedMD5PasswordHasher"]


@pytest.fixture
def gate():
    CountingMD5PasswordHasher.reset()
    GatedMD5PasswordHasher.gate.clear()
    GatedMD5PasswordHasher.entered = threading.Semaphore(0)
    yield GatedMD5PasswordHasher
    GatedMD5PasswordHasher.gate.set()  # never leave a thread waiting
    CountingMD5PasswordHasher.reset()


def wait_for(semaphore, times):
    for _ in range(times):
        assert semaphore.acquire(timeout=30), "the sign-ins did not get that far"


class Attempts:
    """Sign-ins posted in threads, each by its own browser and database connection.

    `decided` is released once per attempt when it has decided under the counters' row
    lock (its SELECT ... FOR UPDATE has returned) or, refused before locking, when its
    answer is back: what it saw then is what the test set up."""

    def __init__(self):
        self.threads, self.statuses, self.errors = [], {}, []
        self.decided = threading.Semaphore(0)
        self.lock = threading.Lock()

    def start(self, name, username, password, ip):
        thread = threading.Thread(target=self._run, args=(name, username, password, ip))
        self.threads.append(thread)
        thread.start()

    def _run(self, name, username, password, ip):
        told = []

        def tell():
            if not told:
                told.append(True)
                self.decided.release()

        def watch(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            if "FOR UPDATE" in sql:
                tell()
            return result

        try:
            with connection.execute_wrapper(watch):
                response = post_login(username, password, ip=ip)
            with self.lock:
                self.statuses[name] = response.status_code
        except Exception as error:  # reported in the test's thread
            with self.lock:
                self.errors.append(error)
        finally:
            tell()
            connection.close()

    def join(self):
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads), "sign-ins still running"
        assert self.errors == []
        return self.statuses


@postgresql_only
@override_settings(PASSWORD_HASHERS=GATED_HASHERS)
def test_ten_simultaneous_right_passwords_all_sign_in(transactional_db, gate):
    email = make_user("target@acme.example").email
    attempts = Attempts()
    for number in range(5):
        attempts.start(number, email, PASSWORD, f"10.1.0.{number + 1}")
    wait_for(gate.entered, 5)  # five passwords being checked: every place is taken
    for number in range(5, 10):
        attempts.start(number, email, PASSWORD, f"10.1.0.{number + 1}")
    wait_for(attempts.decided, 10)  # the other five found them in flight
    gate.gate.set()
    statuses = attempts.join()
    assert sorted(statuses.values()) == [302] * 10
    assert CountingMD5PasswordHasher.verify_calls == 10
    assert not AuditEvent.objects.filter(action=REFUSED).exists()
    row = counter(Kind.ACCOUNT, email)
    assert (row.failures, row.in_flight) == (0, 0)


@postgresql_only
@override_settings(PASSWORD_HASHERS=GATED_HASHERS)
def test_fifty_simultaneous_wrong_passwords_check_five_and_block(transactional_db, gate):
    email = make_user("target@acme.example").email
    attempts = Attempts()
    for number in range(50):
        attempts.start(number, email, WRONG, f"10.2.0.{number + 1}")
    wait_for(gate.entered, 5)
    wait_for(attempts.decided, 50)
    gate.gate.set()
    statuses = attempts.join()
    assert sorted(statuses.values()) == [200] * 5 + [429] * 45
    assert CountingMD5PasswordHasher.verify_calls == 5
    row = counter(Kind.ACCOUNT, email)
    assert (row.failures, row.in_flight) == (5, 0)
    assert AuditEvent.objects.filter(action="auth.login.failed").count() == 5
    assert AuditEvent.objects.filter(action=REFUSED).count() == 45
    assert AuditEvent.objects.filter(action="auth.account.blocked").count() == 1
    assert post_login(email, PASSWORD, ip=OTHER_IP).status_code == 429
    assert CountingMD5PasswordHasher.verify_calls == 5


@postgresql_only
@override_settings(PASSWORD_HASHERS=GATED_HASHERS)
def test_a_right_password_waits_for_wrong_ones_in_flight_and_signs_in(transactional_db, gate):
    """Four wrong passwords and a right one are being checked (every place taken): a
    second right one is not refused for them; it signs in once a place frees."""
    email = make_user("target@acme.example").email
    attempts = Attempts()
    for number in range(4):
        attempts.start(f"wrong{number}", email, WRONG, f"10.3.0.{number + 1}")
    attempts.start("right", email, PASSWORD, "10.3.0.10")
    wait_for(gate.entered, 5)
    attempts.start("late right", email, PASSWORD, "10.3.0.11")
    wait_for(attempts.decided, 6)
    gate.gate.set()
    statuses = attempts.join()
    assert statuses == {
        **{f"wrong{number}": 200 for number in range(4)},
        "right": 302,
        "late right": 302,
    }
    assert counter(Kind.ACCOUNT, email).in_flight == 0


@postgresql_only
@override_settings(PASSWORD_HASHERS=GATED_HASHERS)
def test_a_right_password_behind_five_wrong_ones_in_flight_is_refused_unchecked(
    transactional_db, gate
):
    email = make_user("target@acme.example").email
    attempts = Attempts()
    for number in range(5):
        attempts.start(f"wrong{number}", email, WRONG, f"10.4.0.{number + 1}")
    wait_for(gate.entered, 5)
    attempts.start("right", email, PASSWORD, "10.4.0.10")
    wait_for(attempts.decided, 6)
    gate.gate.set()
    statuses = attempts.join()
    assert statuses["right"] == 429  # the five became five confirmed failures
    assert sorted(statuses.values()) == [200] * 5 + [429]
    assert CountingMD5PasswordHasher.verify_calls == 5


def test_a_reservation_left_by_a_crashed_process_stops_counting(world):
    """Five attempts in flight whose process died: after IN_FLIGHT_EXPIRY they hold no
    place; before it, a right password is refused (429, unchecked), never checked as a
    sixth."""
    email = world.users[Role.SALES].email
    t0 = start()
    with time_machine.travel(t0, tick=False) as clock:
        LoginThrottle.objects.create(
            kind=Kind.ACCOUNT, key=email, in_flight=5, in_flight_since=t0 - timedelta(seconds=5)
        )
        response = post_login(email, PASSWORD)
        assert response.status_code == 429
        assert "Too many sign-in attempts at the same time." in text(response)
        expires = t0 - timedelta(seconds=5) + IN_FLIGHT_EXPIRY
        assert response["Retry-After"] == str(int((expires - t0).total_seconds()))
        clock.move_to(expires)
        assert post_login(email, PASSWORD).status_code == 302
    row = counter(Kind.ACCOUNT, email)
    assert (row.failures, row.in_flight) == (0, 0)


# --- 2. One counter per person, however the address is typed ---------------------------


def test_compatibility_forms_of_an_address_share_its_counter(world):
    email = world.users[Role.ADMIN].email  # admin@acme.example
    variants = [
        "ａｄｍｉｎ@acme.example",  # fullwidth letters
        "admin＠ａｃｍｅ.example",  # fullwidth @ and letters
        "ADMIN@ACME.EXAMPLE",
        "Ａｄｍｉｎ@Acme.Example ",
        "admin@acme.example",
    ]
    with time_machine.travel(start(), tick=False):
        for number, username in enumerate(variants):
            response = post_login(username, WRONG, ip=f"192.0.2.{number + 1}")
            assert response.status_code == 200, username
        response = post_login(email, PASSWORD, ip=OTHER_IP)
    assert response.status_code == 429
    assert LOCKOUT in text(response)
    counters = LoginThrottle.objects.filter(kind=Kind.ACCOUNT).values_list("key", "failures")
    assert list(counters) == [(email, 5)]


def test_an_ipv4_mapped_address_counts_on_its_ipv4_counter(world):
    victim = world.users[Role.GUEST].email
    with time_machine.travel(start(), tick=False):
        for number in range(10):
            address = f"::ffff:{IP}" if number % 2 else IP
            assert post_login(f"ghost{number}@acme.example", WRONG, ip=address).status_code == 200
        assert post_login(victim, PASSWORD, ip=f"::ffff:{IP}").status_code == 429
        assert post_login(victim, PASSWORD, ip=IP).status_code == 429
    assert list(LoginThrottle.objects.filter(kind=Kind.IP).values_list("key", "failures")) == [
        (IP, 10)
    ]


# --- 3. Password reset: limited, queued, linked on SITE_URL ----------------------------


def reset(email, ip=IP, client=None, **extra):
    return (client or Client()).post(RESET_URL, {"email": email}, REMOTE_ADDR=ip, **extra)


def test_a_burst_of_resets_for_one_address_sends_three_emails(
    world, django_capture_on_commit_callbacks
):
    user = world.users[Role.GUEST]
    with time_machine.travel(start(), tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            answers = [reset(user.email, ip=f"192.0.2.{n + 1}") for n in range(8)]
            unknown = [reset("nobody@acme.example", ip=f"192.0.2.{n + 1}") for n in range(8)]
        assert {(r.status_code, r["Location"]) for r in answers + unknown} == {(302, SENT_URL)}
        assert [m.to for m in mail.outbox] == [[user.email]] * 3
        # An hour after the last one sent, the address may ask again.
        clock.shift(timedelta(hours=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert reset(user.email.upper()).status_code == 302
    assert len(mail.outbox) == 4


def test_resets_from_one_address_are_limited_with_a_429_saying_when(world):
    t0 = start()
    with time_machine.travel(t0, tick=False):
        for number in range(20):
            assert reset(f"someone{number}@acme.example").status_code == 302
        refused = reset(world.users[Role.GUEST].email)
        other = reset(world.users[Role.GUEST].email, ip=OTHER_IP)
    until = timezone.localtime(t0 + timedelta(hours=1))
    assert refused.status_code == 429
    assert refused["Retry-After"] == "3600"
    assert (
        f"Too many password reset requests from your network. Try again after "
        f"{until:%H:%M} on {until:%Y-%m-%d}." in text(refused)
    )
    assert other.status_code == 302
    assert SecurityNotice.objects.filter(kind=SecurityNotice.Kind.PASSWORD_RESET).count() == 1


@override_settings(SITE_URL="https://app.example.com", ALLOWED_HOSTS=["*"])
def test_the_reset_email_is_queued_with_its_link_on_site_url(
    world, django_capture_on_commit_callbacks
):
    user = world.users[Role.GUEST]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = reset(user.email, HTTP_HOST="attacker.example")
    assert response.status_code == 302
    assert mail.outbox == []  # nothing is sent inside the request
    notice = SecurityNotice.objects.get()
    assert (notice.kind, notice.to, notice.user) == ("password_reset", user.email, user)
    assert "https://app.example.com/accounts/password/reset/" in notice.text_body
    assert "attacker.example" not in notice.text_body
    for callback in callbacks:
        callback()
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert mail.outbox[0].subject == "Choose a new password"


@postgresql_only
def test_simultaneous_resets_for_one_address_send_three(transactional_db):
    email = make_user("target@acme.example").email
    barrier = threading.Barrier(8, timeout=30)
    statuses, errors = [], []

    def ask(number):
        try:
            client = Client()
            barrier.wait()
            statuses.append(reset(email, ip=f"10.5.0.{number + 1}", client=client).status_code)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert statuses == [302] * 8
    assert SecurityNotice.objects.filter(to=email).count() == 3
    assert failures(Kind.RESET, email) == 3


# --- 4. The session id rotates on every change of privilege or context ------------------


def session_cookie(client):
    return client.cookies["sessionid"].value


def old_cookie_signs_in(old):
    """Whether a browser presenting the old session cookie is still signed in."""
    stale = Client()
    stale.cookies["sessionid"] = old
    return not signed_out(stale)


def test_signing_in_rotates_the_session(world, client):
    client.get(LOGIN_URL)
    session = client.session
    session.save()
    before = session_cookie(client)
    sign_in(client, world.users[Role.GUEST])
    assert session_cookie(client) != before
    assert not signed_out(client)
    assert not old_cookie_signs_in(before)


def test_switching_entity_rotates_the_session(world, client):
    main_admin = world.main_admin
    work_in(client, main_admin, world.a)
    before = session_cookie(client)
    response = client.post("/switch-entity/", {"entity": world.b.pk})
    assert response.status_code == 302
    after = session_cookie(client)
    assert after != before
    assert not old_cookie_signs_in(before)
    assert client.session[SESSION_ENTITY_KEY] == world.b.pk
    assert client.get("/").status_code == 200


def test_switching_entity_keeps_the_waiting_code_and_its_tries(world, client):
    """The new id does not start a new code challenge (new tries): the texted code still
    works after switching back and forth."""
    policy = SecurityPolicy.objects.create(
        entity=world.a, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    AllowedNetwork.objects.create(policy=policy, network="10.0.0.0/8", label="Office")
    User.objects.filter(pk=world.main_admin.pk).update(phone="+4798765432")
    sms.outbox.clear()
    sign_in(client, world.main_admin, IP)  # lands in a: a code is texted
    assert len(sms.outbox) == 1
    client.post("/account/verify-address/", {"code": "000000"}, REMOTE_ADDR=IP)
    client.post("/switch-entity/", {"entity": world.b.pk}, REMOTE_ADDR=IP)
    switched = client.post("/switch-entity/", {"entity": world.a.pk}, REMOTE_ADDR=IP, follow=True)
    assert switched.redirect_chain[-1][0] == "/account/verify-address/"
    assert len(sms.outbox) == 1  # no new code, so no new tries
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1)
    if code == "000000":
        pytest.skip("the random code happened to be 000000")
    wrong = client.post("/account/verify-address/", {"code": "000001"}, REMOTE_ADDR=IP)
    if code != "000001":
        assert "3 tries left." in text(wrong)  # the try before the switch still counts
    before = session_cookie(client)
    done = client.post("/account/verify-address/", {"code": code}, REMOTE_ADDR=IP)
    assert done.status_code == 302
    assert session_cookie(client) != before  # the approval rotates it too
    assert not old_cookie_signs_in(before)
    sms.outbox.clear()


def test_changing_the_password_rotates_the_session(world, client):
    work_in(client, world.users[Role.GUEST], world.a)
    before = session_cookie(client)
    response = client.post(
        CHANGE_URL,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert session_cookie(client) != before
    assert not signed_out(client)
    assert not old_cookie_signs_in(before)


def test_the_second_factor_rotates_the_session(world, client, clock):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a)
    client.get(SETUP)
    device = pending_device(user)
    before = session_cookie(client)
    assert client.post(SETUP, {"code": code_at(device)}).status_code == 200  # enrolled
    assert session_cookie(client) != before
    assert not old_cookie_signs_in(before)

    client.post("/accounts/logout/")
    clock.shift(60)  # a new time step: the enrolment's code cannot be replayed
    sign_in(client, user)
    before = session_cookie(client)
    assert client.get("/")["Location"].startswith(VERIFY)
    device.refresh_from_db()
    assert client.post(VERIFY, {"code": code_at(device)}).status_code == 302
    assert session_cookie(client) != before
    assert client.get("/").status_code == 200
    assert not old_cookie_signs_in(before)


# --- 5. Every check of a password is a sign-in attempt ---------------------------------


def change(client, old_password, ip=IP):
    return client.post(
        CHANGE_URL,
        {
            "old_password": old_password,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
        REMOTE_ADDR=ip,
    )


def test_wrong_current_passwords_count_and_block_the_change_and_the_sign_in(world, client):
    user = world.users[Role.GUEST]
    t0 = start()
    with time_machine.travel(t0, tick=False):
        work_in(client, user, world.a)
        for _ in range(4):
            response = change(client, WRONG)
            assert response.status_code == 200
            assert LOCKOUT not in text(response)
        fifth = change(client, WRONG)
        assert fifth.status_code == 200
        assert LOCKOUT in text(fifth)  # the attempt that starts the block says so
        for _ in range(3):
            assert change(client, WRONG).status_code == 429
        right = change(client, PASSWORD)
        signing_in = post_login(user.email, PASSWORD, ip=OTHER_IP)
    until = timezone.localtime(t0 + timedelta(hours=1))
    assert right.status_code == 429
    assert right["Retry-After"] == "3600"
    assert f"{LOCKOUT} Try again after {until:%H:%M} on {until:%Y-%m-%d}." in text(right)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # not changed during the block
    assert signing_in.status_code == 429
    assert failures(Kind.ACCOUNT, user.email) == 5
    assert failures(Kind.IP, IP) == 5
    failed = AuditEvent.objects.filter(action="auth.login.failed")
    assert failed.count() == 5
    assert {(e.target_id, e.data["username"]) for e in failed} == {(str(user.pk), user.email)}
    assert AuditEvent.objects.filter(action=REFUSED, target_id=str(user.pk)).count() == 5
    assert AuditEvent.objects.filter(action="auth.account.blocked").count() == 1


def test_the_right_current_password_starts_the_counter_again(world, client):
    user = world.users[Role.GUEST]
    with time_machine.travel(start(), tick=False):
        for _ in range(4):
            post_login(user.email, WRONG)
        work_in(client, user, world.a)
        assert change(client, PASSWORD).status_code == 302
    assert failures(Kind.ACCOUNT, user.email) == 0
    assert failures(Kind.IP, IP) == 4


def test_a_refused_admin_login_is_one_audit_event_and_says_when(world):
    user = world.users[Role.ADMIN]
    t0 = start()
    with time_machine.travel(t0, tick=False) as clock:
        for _ in range(5):
            post_login(user.email, WRONG)
        clock.shift(timedelta(minutes=10))
        since = last_event_id()
        response = Client().post(
            "/admin/login/?next=/admin/",
            {"username": user.email, "password": PASSWORD},
            REMOTE_ADDR=OTHER_IP,
        )
    assert response.status_code == 429
    assert response["Retry-After"] == str(50 * 60)
    assert [event.action for event in new_events(since)] == [REFUSED]


def test_every_lockout_429_carries_retry_after(world):
    t0 = start()
    with time_machine.travel(t0, tick=False) as clock:
        for number in range(10):
            post_login(f"ghost{number}@acme.example", WRONG)
        clock.shift(timedelta(hours=2))
        response = post_login(world.users[Role.GUEST].email, PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == str(22 * 3600)


# --- 6. Password reset takes the same time for every address ----------------------------


class SlowSMTPBackend(BaseEmailBackend):
    """An SMTP server 200 ms away."""

    sent = []

    def send_messages(self, messages):
        time.sleep(0.2)
        SlowSMTPBackend.sent.extend(messages)
        return len(messages)


@override_settings(EMAIL_BACKEND="tests.security.test_signin_edges.SlowSMTPBackend")
def test_a_reset_takes_the_same_time_for_known_and_unknown_addresses(
    world, django_capture_on_commit_callbacks
):
    SlowSMTPBackend.sent = []
    known = [user.email for role, user in world.users.items()][:5]
    unknown = [f"nobody{number}@acme.example" for number in range(5)]
    client = Client()
    reset("warm-up@acme.example", client=client)
    times = {"known": [], "unknown": []}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for known_email, unknown_email in zip(known, unknown, strict=True):
            for kind, email in (("known", known_email), ("unknown", unknown_email)):
                began = time.perf_counter()
                response = reset(email, client=client)
                times[kind].append(time.perf_counter() - began)
                assert (response.status_code, response["Location"]) == (302, SENT_URL)
    gap = statistics.median(times["known"]) - statistics.median(times["unknown"])
    assert abs(gap) < 0.05, times
    assert SlowSMTPBackend.sent == []  # the requests waited on no SMTP server
    for callback in callbacks:
        callback()
    assert sorted(m.to[0] for m in SlowSMTPBackend.sent) == sorted(known)


def test_the_nightly_purge_keeps_a_counter_whose_password_check_is_in_flight(db):
    """The purge forgets counters with no failure left, but not one whose attempt is being
    checked right now: its failure would otherwise land on a fresh row and the attempts in
    flight would no longer count."""
    now = timezone.now()
    checking = LoginThrottle.objects.create(
        kind=Kind.ACCOUNT, key="checking@acme.example", in_flight=1, in_flight_since=now
    )
    forgotten = LoginThrottle.objects.create(kind=Kind.ACCOUNT, key="quiet@acme.example")
    dead = LoginThrottle.objects.create(
        kind=Kind.IP,
        key="203.0.113.5",
        in_flight=1,
        in_flight_since=now - IN_FLIGHT_EXPIRY - timedelta(seconds=1),
    )

    purge_login_throttles(now=now)

    left = set(LoginThrottle.objects.values_list("pk", flat=True))
    assert checking.pk in left
    assert forgotten.pk not in left and dead.pk not in left
