"""Pages a person opens: health, login, dashboard; headers; query budgets."""

import re
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from accounts.roles import Role
from security.audit import record
from tests.conftest import work_in
from tests.factories import customer

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_health_answers_200_when_the_database_answers(db, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_health_answers_503_when_the_database_does_not(db, client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", refuse)
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_the_login_page_is_served_with_a_strict_content_security_policy(db, client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_no_template_has_inline_scripts_styles_or_external_assets():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert "<style" not in text and " style=" not in text, template
        assert not re.search(r" on[a-z]+=", text), template
        assert not re.search(r"(src|href)=\"(https?:)?//", text), template


def test_anonymous_visitors_are_sent_to_the_login_page(db, client):
    response = client.get("/customers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/customers/")


def test_a_logged_in_user_opening_the_login_page_goes_to_the_dashboard(world, client):
    work_in(client, world.users[Role.GUEST], world.a)
    assert client.get("/accounts/login/")["Location"] == "/"


def test_an_unknown_page_is_a_friendly_404(world, client):
    work_in(client, world.users[Role.GUEST], world.a)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "There is nothing here, or you do not have access to it." in (response.content.decode())


def test_a_form_posted_without_its_csrf_token_gets_a_clear_page(world):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.main_admin)
    response = strict.post("/switch-entity/", {"entity": world.b.pk})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()


def test_the_dashboard_costs_a_fixed_number_of_queries(
    world, client, django_assert_max_num_queries
):
    for number in range(30):
        customer(world.a, str(number))
        record("bulk.event", entity=world.a)
    work_in(client, world.main_admin, world.a)
    client.get("/")  # the first request after sign-in also checks for a 2FA device
    # session, user, tenancy (3), policy, customer count, audit events: none per row.
    with django_assert_max_num_queries(8):
        assert client.get("/").status_code == 200


def test_the_customer_list_costs_a_fixed_number_of_queries(
    world, client, django_assert_max_num_queries
):
    for number in range(60):
        customer(world.a, str(number))
    work_in(client, world.users[Role.GUEST], world.a)
    client.get("/customers/")  # the first request after sign-in also checks for a device
    with django_assert_max_num_queries(8):
        assert client.get("/customers/").status_code == 200


def test_the_login_path_costs_a_fixed_number_of_queries(
    world, client, django_assert_max_num_queries
):
    from tests.conftest import PASSWORD

    # Block check (1), lockout reservation (lock; on a first attempt for this account or
    # address, create the counters and lock again; one update; +2 savepoints), then one
    # transaction (+2): user, tenancy (3) and policies (1) for the inactivity rule, the
    # reservation given back (1), last_login, audit event; then the new session, written
    # once (one insert; +2 savepoints here, inside the test's transaction): 20 whoever
    # logs in and however many entities and policies there are, and 2 fewer once the
    # counters exist.
    with django_assert_max_num_queries(20):
        response = client.post(
            "/accounts/login/", {"username": world.main_admin.email, "password": PASSWORD}
        )
    assert response.status_code == 302
    client.logout()
    with django_assert_max_num_queries(18):
        response = client.post(
            "/accounts/login/", {"username": world.main_admin.email, "password": PASSWORD}
        )
    assert response.status_code == 302


@pytest.mark.parametrize("url", ["/", "/customers/", "/settings/users/", "/audit/"])
def test_signed_in_pages_are_not_kept_in_the_browser_cache(world, client, url):
    response = work_in(client, world.users[Role.ADMIN], world.a).get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_a_forged_session_cookie_is_treated_as_signed_out(world, client):
    client.cookies["sessionid"] = "forged-or-garbage-value"
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
