"""Password rules, rotation, the change and reset flows."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.password_validation import validate_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client, TestCase
from django.utils import timezone

from accounts.admin import UserCreationForm
from accounts.models import User
from accounts.roles import Role
from security.models import AuditEvent, SecurityPolicy
from security.rotation import remind_expiring_passwords
from tests.conftest import PASSWORD, work_in

NEW_PASSWORD = "Fresh-Passw0rd-2026!"


def messages_for(password, user=None):
    try:
        validate_password(password, user)
    except ValidationError as exc:
        return exc.messages
    return []


@pytest.mark.parametrize(
    "password,message",
    [
        ("Sh0rt!", "The password must be at least 9 characters long."),
        ("NoDigitsHere!", "The password must contain a digit."),
        ("no-upper-case-7", "The password must contain an uppercase letter."),
        ("NoSpecial12345", "The password must contain a special character, such as ! ? # - or %."),
        # Letters of any alphabet are letters, not special characters.
        ("ÅÆØåæø123456", "The password must contain a special character, such as ! ? # - or %."),
        ("Passordæ12345", "The password must contain a special character, such as ! ? # - or %."),
        ("Blåbær 2026 ok", "The password must contain a special character, such as ! ? # - or %."),
        ("123456789!A", None),  # has a letter (A): letters rule satisfied
        ("1234567890!!", "The password must contain a letter."),
    ],
)
def test_each_failed_rule_has_its_own_message(db, password, message):
    found = messages_for(password)
    if message is None:
        assert not any("letter." in m for m in found)
    else:
        assert message in found


def test_a_password_meeting_every_rule_passes(db):
    assert messages_for("Velvet-Harbor-42!") == []


@pytest.mark.parametrize("password", ["Blåbær_2026", "Ærlig-Øl-42", "Ünïcödé#2026"])
def test_letters_of_any_alphabet_count_as_letters_beside_a_real_special_character(db, password):
    assert messages_for(password) == []


def test_a_password_over_128_characters_is_refused_with_its_length(db):
    assert messages_for("Aa1!" + "x" * 124) == []
    assert "The password must be at most 128 characters long (it has 129)." in messages_for(
        "Aa1!" + "x" * 125
    )


def test_long_passwords_are_not_truncated(world):
    user = world.users[Role.GUEST]
    long_password = "Aa1!" + "y" * 120
    user.set_password(long_password)
    user.save()
    assert user.check_password(long_password)
    assert not user.check_password(long_password[:-1] + "z")


def test_a_password_close_to_the_email_is_refused(world):
    user = world.users[Role.GUEST]
    assert "The password is too similar to the email address." in messages_for(
        "Guest@Acme.Example1", user
    )


def test_a_common_password_is_refused(db):
    # Strong by the character rules, but in Django's list of common passwords.
    assert messages_for("N0=Acc3ss") == ["This password is too common."]


def test_the_last_five_passwords_cannot_be_reused(world):
    user = world.users[Role.GUEST]
    history = [f"Rotating-Pass-{n}!" for n in range(6)]
    for password in history:
        assert messages_for(password, user) == []
        user.set_password(password)
        user.save()
    for recent in history[1:]:
        assert "This password was one of your last 5; choose another." in messages_for(recent, user)
    assert messages_for(history[0], user) == []  # six passwords ago: allowed again
    assert user.password_history.count() == 5


def test_the_admin_user_form_applies_the_same_rules(db):
    form = UserCreationForm(
        data={
            "email": "new@acme.example",
            "usable_password": "true",
            "password1": "weakpass",
            "password2": "weakpass",
        }
    )
    assert not form.is_valid()
    assert "The password must contain a digit." in form.errors["password2"]


def test_createsuperuser_applies_the_same_rules(db, monkeypatch, capsys):
    answers = iter(["ops@acme.example", "Ops Person", "n"])  # "n": do not bypass the rules
    passwords = iter(["weakpass", "weakpass", "Strong-Ops-Pass-9!", "Strong-Ops-Pass-9!"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(passwords))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    call_command("createsuperuser", interactive=True)
    assert "The password must contain a digit." in capsys.readouterr().err
    assert User.objects.get(email="ops@acme.example").check_password("Strong-Ops-Pass-9!")


# --- Changing the password ---------------------------------------------------------------


def test_changing_the_password_keeps_this_session_and_ends_the_others(world):
    user = world.users[Role.GUEST]
    here, elsewhere = Client(), Client()
    work_in(here, user, world.a)
    work_in(elsewhere, user, world.a)
    response = here.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302  # signed out
    event = AuditEvent.objects.get(action="auth.password.changed")
    assert event.data == {"other_sessions_ended": 1}


def test_the_change_form_explains_each_failed_rule(world, client):
    work_in(client, world.users[Role.GUEST], world.a)
    response = client.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": "short", "new_password2": "short"},
    )
    content = response.content.decode()
    assert "The password must be at least 9 characters long." in content
    assert "The password must contain an uppercase letter." in content


# --- Forced change ------------------------------------------------------------------------


@pytest.fixture
def thirty_days(world):
    SecurityPolicy.objects.create(entity=world.a, password_max_age_days=30)
    return world


def age_password(user, days, seconds=0):
    changed = timezone.now() - timedelta(days=days, seconds=seconds)
    User.objects.filter(pk=user.pk).update(password_changed_at=changed)


@pytest.mark.parametrize("seconds_past,forced", [(-1, False), (1, True)])
def test_the_change_is_forced_just_past_the_maximum_age(thirty_days, client, seconds_past, forced):
    user = thirty_days.users[Role.GUEST]
    with time_machine.travel("2026-06-01 12:00Z", tick=False):
        age_password(user, 30, seconds_past)
        response = work_in(client, user, thirty_days.a).get("/customers/")
    if forced:
        assert response.status_code == 302 and response["Location"] == "/accounts/password/change/"
    else:
        assert response.status_code == 200


def test_an_expired_password_allows_only_the_change_form_and_logout(thirty_days, client):
    user = thirty_days.users[Role.GUEST]
    age_password(user, 45)
    work_in(client, user, thirty_days.a)
    for url in ("/", "/customers/", "/audit/"):
        assert client.get(url)["Location"] == "/accounts/password/change/"
    assert client.post("/switch-entity/", {"entity": 1})["Location"] == "/accounts/password/change/"
    page = client.get("/accounts/password/change/", follow=True)
    assert "Your password is older than 30 days. Choose a new one to continue." in (
        page.content.decode()
    )
    client.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert client.get("/customers/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302


def test_the_stricter_multi_level_age_applies_to_entity_users(world, client):
    SecurityPolicy.objects.create(group=world.group, password_max_age_days=10)
    SecurityPolicy.objects.create(entity=world.a, password_max_age_days=60)
    user = world.users[Role.GUEST]
    age_password(user, 11)
    assert work_in(client, user, world.a).get("/")["Location"] == "/accounts/password/change/"


def test_a_user_of_an_entity_without_rules_is_never_forced(world, client):
    user = world.outsider
    age_password(user, 4000)
    assert work_in(client, user, world.c).get("/").status_code == 200


@pytest.mark.parametrize(
    "days_old,banner", [(22, None), (24, "in 6 days"), (28, "in 2 days"), (29, "within a day")]
)
def test_a_banner_warns_a_week_before_expiry(thirty_days, client, days_old, banner):
    user = thirty_days.users[Role.GUEST]
    with time_machine.travel("2026-06-01 12:00Z", tick=False):
        age_password(user, days_old, seconds=60)
        content = work_in(client, user, thirty_days.a).get("/").content.decode()
    if banner is None:
        assert "Your password expires" not in content
    else:
        assert f"Your password expires {banner}." in content


def test_the_reminder_job_emails_once_per_password(thirty_days, django_capture_on_commit_callbacks):
    guest, sales = thirty_days.users[Role.GUEST], thirty_days.users[Role.SALES]
    age_password(guest, 25)
    age_password(sales, 10)
    # Each reminder is queued in the outbox and sent by the task once the job commits.
    sent_after_commit = django_capture_on_commit_callbacks
    with sent_after_commit(execute=True):
        assert remind_expiring_passwords() == 1
    assert [m.to for m in mail.outbox] == [[guest.email]]
    assert "Your password expires on" in mail.outbox[0].body
    with sent_after_commit(execute=True):
        assert remind_expiring_passwords() == 0  # idempotent
    assert len(mail.outbox) == 1
    guest.refresh_from_db()
    guest.set_password(NEW_PASSWORD)
    guest.save()
    age_password(guest, 26)
    with sent_after_commit(execute=True):
        assert remind_expiring_passwords() == 1  # a new password gets its own reminder
    assert [m.to for m in mail.outbox] == [[guest.email], [guest.email]]


# --- Reset by email -----------------------------------------------------------------------


def test_reset_gives_the_same_answer_whether_or_not_the_address_exists(world, client):
    # The email is queued in the outbox and sent by the task once the request commits.
    with TestCase.captureOnCommitCallbacks(execute=True):
        known = client.post("/accounts/password/reset/", {"email": "GUEST@acme.example"})
        unknown = client.post("/accounts/password/reset/", {"email": "nobody@acme.example"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password/reset/sent/"
    assert [m.to for m in mail.outbox] == [["guest@acme.example"]]


def reset_link(client, email):
    with TestCase.captureOnCommitCallbacks(execute=True):  # sent once the request commits
        client.post("/accounts/password/reset/", {"email": email})
    body = mail.outbox[-1].body
    return next(line for line in body.splitlines() if "/accounts/password/reset/" in line).split(
        "testserver", 1
    )[1]


def test_a_reset_link_works_once_and_ends_every_session(world, client):
    user = world.users[Role.GUEST]
    other = work_in(Client(), user, world.a)
    link = reset_link(client, user.email)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert done["Location"] == "/accounts/password/reset/complete/"
    assert other.get("/").status_code == 302
    again = client.get(link, follow=True)
    assert "This link does not work" in again.content.decode()
    assert AuditEvent.objects.filter(action="auth.password.reset", actor=user).exists()


def test_a_reset_link_expires_after_an_hour(world, client):
    with time_machine.travel("2026-06-01 12:00Z", tick=False):
        link = reset_link(client, world.users[Role.GUEST].email)
    with time_machine.travel("2026-06-01 13:00:01Z", tick=False):
        page = client.get(link, follow=True)
    assert "This link does not work" in page.content.decode()


def test_a_reset_applies_the_password_rules(world, client):
    link = reset_link(client, world.users[Role.GUEST].email)
    url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(url, {"new_password1": "weakpass", "new_password2": "weakpass"})
    assert "The password must contain a digit." in response.content.decode()
