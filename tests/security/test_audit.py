"""The audit log: what gets recorded, who sees it, filters, export, append-only."""

import csv
import io
import re

import pytest
import time_machine
from django.test import override_settings

from accounts.roles import Role
from security.audit import record
from security.client_ip import client_ip
from security.models import AppendOnlyError, AuditEvent
from tests.conftest import PASSWORD, work_in

LOGIN_ERROR = "That email and password do not match an active account."


def login(client, email, password, **extra):
    return client.post("/accounts/login/", {"username": email, "password": password}, **extra)


def test_a_successful_login_is_recorded_with_the_client_address(world, client):
    user = world.users[Role.ADMIN]
    response = login(client, "  ADMIN@Acme.example ", PASSWORD, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="auth.login.succeeded")
    assert (event.actor, event.actor_label, event.ip) == (user, user.email, "203.0.113.9")


def test_a_failed_login_is_recorded_against_the_targeted_account(world, client):
    response = login(client, "admin@acme.example", "wrong", REMOTE_ADDR="198.51.100.7")
    assert LOGIN_ERROR in response.content.decode()
    event = AuditEvent.objects.get(action="auth.login.failed")
    assert event.actor is None
    assert event.target_id == str(world.users[Role.ADMIN].pk)
    assert event.target_label == "admin@acme.example"  # as block and refusal events
    assert event.data == {"username": "admin@acme.example"}
    assert "wrong" not in str(event.data)


def test_an_unknown_address_gets_the_same_answer_as_a_wrong_password(world, client):
    unknown = login(client, "nobody-here@acme.example", "wrong").content.decode()
    wrong = login(client, "admin@acme.example", "wrong").content.decode()
    assert LOGIN_ERROR in unknown and LOGIN_ERROR in wrong
    event = AuditEvent.objects.filter(action="auth.login.failed").last()
    assert event.target_id == "" and event.data == {"username": "nobody-here@acme.example"}
    assert event.target_label == "nobody-here@acme.example"


def test_an_inactive_account_cannot_log_in_and_is_not_revealed(world, client):
    user = world.users[Role.GUEST]
    user.is_active = False
    user.save()
    response = login(client, user.email, PASSWORD)
    assert response.status_code == 200
    assert LOGIN_ERROR in response.content.decode()


def test_logout_is_recorded(world, client):
    login(client, world.users[Role.ADMIN].email, PASSWORD)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="auth.logout", actor=world.users[Role.ADMIN]).exists()


def test_opening_the_logout_address_asks_instead_of_signing_out(world, client):
    admin = world.users[Role.ADMIN]
    login(client, admin.email, PASSWORD)
    page = client.get("/accounts/logout/")
    assert page.status_code == 200
    content = page.content.decode()
    assert f"You are logged in as <strong>{admin.email}</strong>." in content
    assert '<form method="post" action="/accounts/logout/">' in content
    assert client.get("/").status_code == 200  # still signed in
    assert not AuditEvent.objects.filter(action="auth.logout").exists()
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert client.get("/accounts/logout/")["Location"] == "/accounts/login/"


def test_event_details_read_as_sentences_not_python(world, client):
    event = record(
        "security.settings.changed",
        entity=world.a,
        data={
            "level": "entity-level",
            "changes": {
                "require_2fa": [False, True],
                "password_max_age_days": [None, 60],
                "restricted_roles": [["collector"], ["collector", "sales"]],
            },
        },
    )
    page = work_in(client, world.users[Role.ADMIN], world.a).get(f"/audit/{event.pk}/")
    content = page.content.decode()
    assert "<dt>require 2fa</dt><dd>off → on</dd>" in content
    assert "<dt>password max age days</dt><dd>not set → 60</dd>" in content
    assert "<dt>restricted roles</dt><dd>collector → collector, sales</dd>" in content
    assert "<dt>level</dt><dd>entity-level</dd>" in content
    assert "[" not in content.split("<h2>Details</h2>")[1].split("</dl>")[0]


def test_the_log_cannot_be_changed_or_deleted(world):
    event = record("test.event", entity=world.a)
    event.action = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def audit_page(client, viewer, entity, **params):
    return work_in(client, viewer, entity).get("/audit/", params)


def listed_actions(response):
    """The actions in the table's rows (the filter's drop-down lists them too)."""
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<code>([^<]+)</code>", body)


def test_an_admin_sees_their_entitys_events_and_members_sign_ins_only(world, client):
    record("mine.event", entity=world.a)
    record("sibling.event", entity=world.b)
    record("stranger.event", entity=world.c)
    record("auth.login.succeeded", actor=world.users[Role.SALES])
    record("auth.login.succeeded", actor=world.outsider)
    record("group.event", group=world.group)
    content = audit_page(client, world.users[Role.ADMIN], world.a).content.decode()
    assert "mine.event" in content
    assert world.users[Role.SALES].email in content
    for hidden in ("sibling.event", "stranger.event", world.outsider.email, "group.event"):
        assert hidden not in content


def test_a_main_admin_also_sees_the_multi_level_events(world, client):
    record("group.event", group=world.group)
    content = audit_page(client, world.main_admin, world.a).content.decode()
    assert "group.event" in content


@pytest.mark.parametrize(
    "role", [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]
)
def test_staff_roles_cannot_open_the_audit_page(world, client, role):
    assert audit_page(client, world.users[role], world.a).status_code == 403
    client.logout()
    assert work_in(client, world.users[role], world.a).get("/audit/export.csv").status_code == 403


def test_the_audit_page_filters_by_action_user_and_date(world, client):
    with time_machine.travel("2026-03-01 12:00Z", tick=False):
        record("old.event", entity=world.a, actor=world.users[Role.SALES])
    with time_machine.travel("2026-03-10 12:00Z", tick=False):
        record("new.event", entity=world.a, actor=world.users[Role.GUEST])
    admin = world.users[Role.ADMIN]

    everything = listed_actions(audit_page(client, admin, world.a))
    assert everything == ["auth.login.succeeded", "new.event", "old.event"]  # newest first
    assert listed_actions(audit_page(client, admin, world.a, action="new.event")) == ["new.event"]
    assert listed_actions(audit_page(client, admin, world.a, user="SALES@")) == ["old.event"]
    since = listed_actions(audit_page(client, admin, world.a, date_from="2026-03-05"))
    assert "new.event" in since and "old.event" not in since
    assert listed_actions(audit_page(client, admin, world.a, date_to="2026-03-05")) == ["old.event"]


@pytest.mark.parametrize(
    "params,message",
    [
        ({"date_from": "yesterday"}, "Enter a valid date."),
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "The end date is before"),
        ({"action": "no.such.action"}, "Select a valid choice."),
    ],
)
def test_a_bad_filter_is_explained_next_to_the_field(world, client, params, message):
    record("some.event", entity=world.a)
    response = audit_page(client, world.users[Role.ADMIN], world.a, **params)
    content = response.content.decode()
    assert response.status_code == 200
    assert message in content
    assert "Correct the filter to see events." in content


def test_the_csv_export_holds_the_filtered_visible_events_and_defuses_formulas(world, client):
    record("mine.event", entity=world.a, target_label='=HYPERLINK("http://evil")')
    record("other.event", entity=world.a)
    record("stranger.event", entity=world.c)
    response = work_in(client, world.users[Role.ADMIN], world.a).get(
        "/audit/export.csv", {"action": "mine.event"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="audit-acme-norge.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["time (UTC)", "actor", "action", "entity", "target", "ip", "data"]
    assert [row[2] for row in rows[1:]] == ["mine.event"]
    assert rows[1][4] == '\'=HYPERLINK("http://evil")'


def test_the_csv_export_with_a_bad_filter_shows_the_error_instead_of_a_file(world, client):
    response = work_in(client, world.users[Role.ADMIN], world.a).get(
        "/audit/export.csv", {"date_from": "31.02.2026"}
    )
    assert response["Content-Type"].startswith("text/html")
    assert "Enter a valid date." in response.content.decode()


def test_the_audit_list_pages_through_many_events(world, client):
    for number in range(120):
        record(f"bulk.event.{number:03d}", entity=world.a)
    admin = world.users[Role.ADMIN]
    first = audit_page(client, admin, world.a)
    assert "Page 1 of 3" in first.content.decode()
    assert len(listed_actions(first)) == 50
    assert listed_actions(audit_page(client, admin, world.a, page="3"))[-1] == "bulk.event.000"
    assert audit_page(client, admin, world.a, page="nonsense").status_code == 200


def test_the_audit_page_costs_a_fixed_number_of_queries(
    world, client, django_assert_max_num_queries
):
    for _ in range(60):
        record("bulk.event", entity=world.a, actor=world.users[Role.SALES])
    work_in(client, world.users[Role.ADMIN], world.a)
    with django_assert_max_num_queries(12):
        assert client.get("/audit/").status_code == 200


class FakeRequest:
    def __init__(self, remote, forwarded=None):
        self.META = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


def test_the_client_address_ignores_forwarded_headers_without_trusted_proxies():
    assert client_ip(FakeRequest("192.0.2.1", "203.0.113.5")) == "192.0.2.1"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXY_NETWORKS=["10.0.0.0/8"])
def test_one_trusted_proxy_means_the_rightmost_forwarded_address():
    assert client_ip(FakeRequest("10.0.0.2", "6.6.6.6, 203.0.113.5")) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=2, TRUSTED_PROXY_NETWORKS=["10.0.0.0/8"])
def test_two_trusted_proxies_count_from_the_right():
    assert client_ip(FakeRequest("10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.1")) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXY_NETWORKS=["192.0.2.0/24"])
@pytest.mark.parametrize("header", ["", "garbage", "1.2.3.4, not-an-ip", "999.1.1.1"])
def test_a_malformed_forwarded_header_falls_back_to_the_socket(header):
    assert client_ip(FakeRequest("192.0.2.1", header)) == "192.0.2.1"
