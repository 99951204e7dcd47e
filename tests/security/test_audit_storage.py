"""The audit log stores what it is given safely: control characters in what a visitor
typed (usernames, targets, details) are kept as visible \\xNN, and every field is capped,
so a log line, a terminal or a CSV reader showing an event cannot be made to act."""

import pytest
from django.urls import reverse

from security.audit import record
from security.models import AuditEvent
from tests.conftest import work_in

FORGED = "alice\r\n2026-01-01 INFO login ok user=root"


def test_a_typed_username_with_a_line_break_is_stored_escaped(world, client):
    client.post(reverse("login"), {"username": FORGED, "password": "wrong"})
    event = AuditEvent.objects.get(action="auth.login.failed")
    stored = event.data["username"] + event.target_label
    assert "\r" not in stored and "\n" not in stored
    # (Addresses are compared and stored lower-cased.)
    assert event.data["username"] == "alice\\x0d\\x0a2026-01-01 info login ok user=root"
    assert event.target_label == event.data["username"]


@pytest.mark.parametrize(
    "character,shown",
    [("\x1b", "\\x1b"), ("\x07", "\\x07"), ("\x00", "\\x00"), ("\x85", "\\x85"), ("\x9b", "\\x9b")],
)
def test_every_control_character_is_stored_visible(world, character, shown):
    event = record(
        "test.event",
        entity=world.a,
        target_label=f"name{character}[2J",
        data={"note": f"a{character}b", "list": [f"x{character}"], f"k{character}": 1},
    )
    event.refresh_from_db()
    assert event.target_label == f"name{shown}[2J"
    assert event.data == {"note": f"a{shown}b", "list": [f"x{shown}"], f"k{shown}": 1}


def test_every_field_is_capped(world):
    event = record(
        "test." + "a" * 300,
        entity=world.a,
        target_label="n" * 1000,
        data={"text": "t" * 50_000, "items": list(range(10_000))},
    )
    event.refresh_from_db()
    assert len(event.action) <= 100 and len(event.target_label) <= 200
    assert len(event.data["text"]) <= 1000 and event.data["text"].endswith("…")
    assert len(event.data["items"]) <= 200


def test_plain_values_are_stored_as_given(world):
    data = {"fields": ["name", "email"], "count": 3, "on": True, "none": None, "æøå": "Ærlig"}
    event = record("test.event", entity=world.a, target_label="Fjellvik AS", data=data)
    event.refresh_from_db()
    assert event.data == data and event.target_label == "Fjellvik AS"


def test_the_audit_export_has_no_forged_line(world, client):
    record("customer.updated", entity=world.a, target_label=FORGED, data={"note": FORGED})
    work_in(client, world.main_admin, world.a)
    response = client.get(reverse("audit-export"))
    body = b"".join(response.streaming_content).decode()
    assert "alice\\x0d\\x0a2026-01-01 INFO login ok" in body  # the target column
    assert not any(line.lower().startswith("2026-01-01 info") for line in body.splitlines())
