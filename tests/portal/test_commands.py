"""Management commands: demo data and the periodic jobs."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Entity, GroupMembership, Membership, User
from accounts.models import UserSession as Session
from accounts.roles import Role
from accounts.sessions import SessionStore
from accounts.tenancy import system_code
from config.celery import app
from customers.models import Customer, CustomerAssignment
from portal.management.commands import demo_data


@pytest.fixture
def password_file(tmp_path, monkeypatch):
    path = tmp_path / ".demo_password"
    monkeypatch.setattr(demo_data, "PASSWORD_FILE", path)
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    return path


def test_demo_data_creates_a_user_for_every_role_and_is_idempotent(db, password_file, capsys):
    call_command("demo_data")
    first = capsys.readouterr().out
    password = password_file.read_text().strip()
    assert f"generated, kept in .demo_password): {password}" in first

    call_command("demo_data")
    second = capsys.readouterr().out
    assert f"kept in .demo_password): {password}" in second

    assert User.objects.count() == len(demo_data.DEMO_USERS)
    roles = set(Membership.objects.values_list("role", flat=True)) | set(
        GroupMembership.objects.values_list("role", flat=True)
    )
    assert roles == set(Role.values)
    assert Entity.objects.filter(group__name=demo_data.GROUP_NAME).count() == 2
    with system_code():
        expected = sum(len(rows) for rows in demo_data.DEMO_CUSTOMERS.values())
        assert Customer.objects.count() == expected
        assert CustomerAssignment.objects.count() == sum(map(len, demo_data.ASSIGNED_TO.values()))
    for email, *_ in demo_data.DEMO_USERS:
        assert User.objects.get(email=email).check_password(password)


def test_demo_users_log_in_through_the_login_page(db, password_file, client):
    call_command("demo_data", password="Given-Pass-2024!")
    response = client.post(
        "/accounts/login/",
        {"username": "collector@demo.example", "password": "Given-Pass-2024!"},
        follow=True,
    )
    assert "Nordlys Finans AS" in response.content.decode()
    assert response.context["tenancy"].role == Role.COLLECTOR


def test_demo_password_comes_from_the_environment(db, password_file, monkeypatch, capsys):
    monkeypatch.setenv("DEMO_PASSWORD", "From-The-Env-77?")
    call_command("demo_data")
    assert "from DEMO_PASSWORD): From-The-Env-77?" in capsys.readouterr().out
    assert not password_file.exists()


def test_a_weak_demo_password_is_refused_with_the_rule_that_failed(db, password_file):
    with pytest.raises(CommandError, match="too weak: The password must be at least 9 char"):
        call_command("demo_data", password="short")
    assert not User.objects.exists()


def test_every_scheduled_job_names_a_registered_task():
    app.loader.import_default_modules()
    assert app.conf.beat_schedule
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in app.tasks, name


def test_run_periodic_jobs_clears_expired_sessions_once(db, capsys):
    expired = SessionStore()
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    live = SessionStore()
    live.create()

    call_command("run_periodic_jobs")
    assert "clear-expired-sessions: ok (1)" in capsys.readouterr().out
    assert list(Session.objects.values_list("pk", flat=True)) == [live.session_key]

    call_command("run_periodic_jobs", only=["clear-expired-sessions"])
    assert "clear-expired-sessions: ok (0)" in capsys.readouterr().out


def test_run_periodic_jobs_names_the_known_jobs_for_an_unknown_one(db):
    with pytest.raises(CommandError, match="Unknown job\\(s\\): nope. Known: clear-expired"):
        call_command("run_periodic_jobs", only=["nope"])
