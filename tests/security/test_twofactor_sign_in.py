"""Signing in with two-factor authentication: after the password only the code step and
logout are open, the code step returns to the page first asked for, a code is used once
(even sent twice at once), the one-step tolerance window, throttling after wrong codes,
and backup codes (each works once, new ones void the old, only hashes stored)."""

import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP

from accounts.models import UserSession
from accounts.roles import Role
from security import twofactor
from security.models import (
    BackupCode,
    BackupCodeDevice,
)
from tests.conftest import work_in
from tests.helpers import (
    ACCOUNT,
    BACKUP,
    LOGIN,
    LOGOUT,
    REMOVE,
    SETUP,
    VERIFY,
    WRONG_AT_SIGN_IN,
    actions,
    code_at,
    enter_code,
    give_authenticator,
    session_key,
    shown_backup_codes,
    sign_in,
    sign_in_with_code,
    signed_out,
    text,
    work_in_verified,
    wrong_code,
)

# --- Signing in with an authenticator -----------------------------------------------------


def test_after_the_password_only_the_code_form_and_logout_are_open(world, client, clock):
    admin = world.users[Role.ADMIN]
    give_authenticator(admin)
    sign_in(client, admin)

    for url in ("/", "/customers/", "/settings/security/", "/audit/", ACCOUNT, SETUP, LOGIN):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == VERIFY, url
    for url in (BACKUP, REMOVE, "/switch-entity/", "/settings/security/", ACCOUNT):
        response = client.post(url, {"code": "123456", "entity": world.a.pk})
        assert response["Location"] == VERIFY, url
    assert BackupCodeDevice.objects.get(user=admin).remaining() == 10
    assert twofactor.has_second_factor(admin)

    page = client.get(VERIFY)
    assert page.status_code == 200
    assert "Enter your code" in text(page)
    assert client.post(LOGOUT)["Location"] == LOGIN
    assert signed_out(client)


def test_the_code_step_returns_to_the_page_first_asked_for(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    anonymous_key = client.session.session_key

    sign_in(client, user)
    password_key = session_key(client)
    assert password_key != anonymous_key
    assert client.get("/customers/")["Location"] == VERIFY
    assert client.get("/")["Location"] == VERIFY  # the first page asked for is kept
    assert client.get(VERIFY).status_code == 200

    response = enter_code(client, code_at(device))

    assert response.status_code == 302
    assert response["Location"] == "/customers/"
    verified_key = session_key(client)
    assert verified_key != password_key
    assert not UserSession.objects.filter(session_key=password_key).exists()
    assert client.get("/customers/").status_code == 200
    assert client.get(VERIFY)["Location"] == "/"  # nothing left to verify
    event = actions("auth.2fa.verified").get()
    assert event.actor == user
    # The cookie of the password step alone does not carry the verification.
    stale = Client()
    stale.cookies["sessionid"] = password_key
    assert signed_out(stale)


def test_the_same_code_cannot_be_used_twice(world, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    code = code_at(device)

    assert sign_in_with_code(Client(), user, code).status_code == 302
    again = sign_in_with_code(second := Client(), user, code)

    assert again.status_code == 200
    assert WRONG_AT_SIGN_IN in text(again)
    assert second.get("/")["Location"] == VERIFY
    assert actions("auth.2fa.verified").count() == 1
    assert actions("auth.2fa.failed").count() == 1
    clock.shift(30)  # the next code works
    assert enter_code(second, code_at(device)).status_code == 302


def test_the_code_step_accepts_a_code_typed_with_a_space(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    code = code_at(device)

    assert sign_in_with_code(client, user, f" {code[:3]} {code[3:]} ")["Location"] == "/"


@pytest.mark.parametrize(
    "steps,accepted",
    [(-2, False), (-1, True), (0, True), (1, True), (2, False)],
    ids=["2-steps-ago", "1-step-ago", "now", "1-step-ahead", "2-steps-ahead"],
)
def test_the_tolerance_window_is_one_step(world, client, clock, steps, accepted):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)

    response = sign_in_with_code(client, user, code_at(device, steps))

    if accepted:
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/").status_code == 200
    else:
        assert response.status_code == 200
        assert WRONG_AT_SIGN_IN in text(response)
        assert client.get("/")["Location"] == VERIFY


def test_wrong_codes_slow_down_the_next_tries(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    sign_in(client, user)
    wrong = wrong_code(device)

    first = enter_code(client, wrong)  # 12:00:05, 1 failure: the next check waits 1 s
    assert WRONG_AT_SIGN_IN in text(first)
    clock.shift(1)
    assert WRONG_AT_SIGN_IN in text(enter_code(client, wrong))  # 2 failures: 2 s
    clock.shift(2)
    assert WRONG_AT_SIGN_IN in text(enter_code(client, wrong))  # 3 failures: 4 s

    # The right code, right away, is refused until the wait is over.
    refused = enter_code(client, code_at(device))
    assert refused.status_code == 200
    assert "Too many wrong codes. Wait 4 seconds and try again." in text(refused)
    clock.shift(3)
    assert "Too many wrong codes. Wait 1 second and try again." in text(
        enter_code(client, code_at(device))
    )
    assert client.get("/")["Location"] == VERIFY

    clock.shift(1)
    assert enter_code(client, code_at(device)).status_code == 302
    assert client.get("/").status_code == 200
    assert actions("auth.2fa.failed", actor=user).count() == 5
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: concurrent connections and row locks",
)
def test_the_same_code_sent_twice_at_once_signs_in_only_once(transactional_db, world, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    code = code_at(device)
    clients = [Client(), Client()]
    for client in clients:
        sign_in(client, user)
    # Both requests reach the code check together (unless one waits on a row lock).
    barrier = threading.Barrier(2, timeout=3)
    real_verify = TOTP.verify

    def verify_together(self, *args, **kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return real_verify(self, *args, **kwargs)

    statuses, errors = [], []

    def send(client):
        try:
            statuses.append(enter_code(client, code).status_code)
        except Exception as error:  # reported in the test's thread
            errors.append(error)
        finally:
            connection.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TOTP, "verify", verify_together)
        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert sorted(statuses) == [200, 302]


# --- Backup codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code,
        lambda code: code.upper(),
        lambda code: code.replace("-", ""),
        lambda code: f"  {code.upper().replace('-', '')} ",
    ],
    ids=["as-shown", "upper-case", "no-dash", "upper-no-dash-spaces"],
)
def test_a_backup_code_works_once(world, client, clock, typed, django_capture_on_commit_callbacks):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = sign_in_with_code(client, user, typed(codes[3]))

    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "You used a backup code; 9 remain." in text(page)
    assert BackupCodeDevice.objects.get(user=user).remaining() == 9
    event = actions("auth.2fa.backup_code_used").get()
    assert event.actor == user and event.data == {"remaining": 9}
    assert not actions("auth.2fa.verified").exists()
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert mail.outbox[0].subject == "A backup code was used"
    assert "9 remain" in mail.outbox[0].body
    assert "9 backup codes left." in text(client.get(ACCOUNT))

    # Used: refused however it is typed, in a new sign-in.
    for variant in (codes[3], codes[3].upper().replace("-", "")):
        clock.shift(5)  # past the throttle of the previous failure
        again = sign_in_with_code(Client(), user, variant)
        assert again.status_code == 200
        assert WRONG_AT_SIGN_IN in text(again)
    assert BackupCodeDevice.objects.get(user=user).remaining() == 9
    assert actions("auth.2fa.backup_code_used").count() == 1


def test_new_backup_codes_void_the_old_ones(world, client, clock):
    user = world.users[Role.GUEST]
    device, old_codes = give_authenticator(user)
    work_in_verified(client, user, world.a, device)

    response = client.post(BACKUP)

    assert response.status_code == 200
    assert "Your new backup codes" in text(response)
    new_codes = shown_backup_codes(response)
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert BackupCode.objects.filter(device__user=user).count() == 10
    assert actions("auth.2fa.backup_codes_regenerated", actor=user).exists()
    assert not any(code in text(client.get(ACCOUNT)) for code in new_codes)

    old = sign_in_with_code(Client(), user, old_codes[0])
    assert WRONG_AT_SIGN_IN in text(old)
    clock.shift(5)
    assert sign_in_with_code(Client(), user, new_codes[0]).status_code == 302


def test_only_hashes_of_backup_codes_are_stored(world):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)
    table = connection.ops.quote_name(BackupCode._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        rows = " ".join(str(row) for row in cursor.fetchall()).lower()

    hashes = list(BackupCode.objects.filter(device__user=user).values_list("code_hash", flat=True))
    assert len(hashes) == 10
    assert all(re.fullmatch(r"[0-9a-f]{40,64}", h) for h in hashes)  # keyed HMAC digests
    assert set(hashes) == {twofactor.backup_code_hash(code) for code in codes}
    for code in codes:
        assert code not in rows
        assert code.replace("-", "") not in rows


def test_new_backup_codes_need_a_finished_sign_in(world, client):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)
    work_in(client, user, world.a)  # password only

    assert client.post(BACKUP)["Location"] == VERIFY
    assert set(
        BackupCode.objects.filter(device__user=user).values_list("code_hash", flat=True)
    ) == {twofactor.backup_code_hash(code) for code in codes}


def test_new_backup_codes_keep_a_backup_code_sign_in(world, client, clock):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)
    assert sign_in_with_code(client, user, codes[0]).status_code == 302

    assert len(shown_backup_codes(client.post(BACKUP))) == 10

    response = client.get(ACCOUNT)
    assert response.status_code == 200, f"sent to {response.get('Location')}"


def test_a_backup_code_of_digits_only_works(world, client, clock, monkeypatch):
    user = world.users[Role.GUEST]
    give_authenticator(user)
    monkeypatch.setattr(twofactor, "BACKUP_ALPHABET", "23456789")
    codes = twofactor.regenerate_backup_codes(user, request=None)

    assert sign_in_with_code(client, user, codes[0]).status_code == 302
