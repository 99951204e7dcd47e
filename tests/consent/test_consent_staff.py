"""Communication consents from the staff side: the default purposes, the Contacts tab,
staff editing with its ledger (and who may), the consent form (page and PDF), and
emailing the contact a link to their own consent page."""

import re
from datetime import date

import pytest
from django.core import mail

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent import services
from consent.models import (
    ConsentEvent,
    ConsentPurpose,
    ConsentSource,
)
from documents.models import OutgoingEmail
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import (
    DEFAULT_NAMES,
    EDITORS,
    VIEWERS,
    add_processor,
    by_name,
    choices,
    consent_url,
    events,
    make_contact,
    pdf_text,
    set_link_days,
    set_privacy,
    states,
)

# --- Purposes and the Contacts tab -----------------------------------------------------------


def test_a_new_entity_gets_the_default_purposes_on_first_use(world, client):
    contact = make_contact(world.c)
    with system_code():
        assert not ConsentPurpose.objects.exists()

    page = work_in(client, world.outsider, world.c).get(consent_url(contact))

    assert page.status_code == 200
    content = page.content.decode()
    for name in DEFAULT_NAMES:
        assert name in content
    with system_code():
        created = ConsentPurpose.objects.filter(entity=world.c)
        assert [p.name for p in created] == DEFAULT_NAMES
        assert all(p.active for p in created)
        # Only the entity that used them got them.
        assert not ConsentPurpose.objects.exclude(entity=world.c).exists()
    # A second use does not duplicate them.
    work_in(client, world.outsider, world.c).get(consent_url(contact))
    with system_code():
        assert ConsentPurpose.objects.count() == len(DEFAULT_NAMES)


def consent_cells(content, name):
    """The Yes/No consent cells of the Contacts-tab row naming `name`."""
    for row in re.findall(r"<tr>(.*?)</tr>", content, re.S):
        if f"<td>{name}</td>" in row:
            return re.findall(r'<td class="consent (yes|no)">(Yes|No)</td>', row)
    raise AssertionError(f"no row for {name}")


def test_the_contacts_tab_shows_each_purpose_per_contact(world, client):
    kari = make_contact(world.a)
    ola = make_contact(world.a, name="Ola Hansen", email="")
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            kari,
            {names["Newsletter"]: True, names["Phone calls"]: False},
            source=ConsentSource.STAFF,
        )
        services.set_consents(ola, {names["Reminders by SMS"]: True}, source=ConsentSource.STAFF)

    page = work_in(client, world.users[Role.GUEST], world.a).get(
        f"/customers/{kari.customer_id}/contacts/"
    )

    assert page.status_code == 200
    content = page.content.decode()
    headers = re.findall(r"<th><small>(.*?)</small></th>", content)
    assert headers == DEFAULT_NAMES
    expected_kari = [name == "Newsletter" for name in DEFAULT_NAMES]
    expected_ola = [name == "Reminders by SMS" for name in DEFAULT_NAMES]
    for contact, expected in [(kari, expected_kari), (ola, expected_ola)]:
        cells = consent_cells(content, contact.name)
        assert [css == "yes" for css, _ in cells] == expected
        assert [text == "Yes" for _, text in cells] == expected


# --- Staff editing ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", EDITORS)
def test_editors_change_consents_and_the_ledger_agrees(world, client, role):
    user = world.users[role]
    contact = make_contact(world.a)
    work_in(client, user, world.a)

    first = client.post(
        consent_url(contact), choices(world.a, "Newsletter", contact=contact), follow=True
    )

    assert first.status_code == 200
    assert f"Saved 5 change(s) for {contact.name}." in first.content.decode()
    assert states(contact) == {name: name == "Newsletter" for name in DEFAULT_NAMES}
    written = events(contact)
    assert len(written) == 5
    for event in written:
        # A first answer: never recorded before, even when it is "no".
        assert event.old_value is None
        assert event.new_value == (event.purpose.name == "Newsletter")
        assert (event.source, event.actor) == (ConsentSource.STAFF, user)
        assert event.ip is None and event.user_agent == ""

    second = client.post(
        consent_url(contact),
        choices(world.a, "Phone calls", "Newsletter", contact=contact),
        follow=True,
    )

    assert "Saved 1 change(s)" in second.content.decode()
    new = events(contact)[5:]
    assert [(e.purpose.name, e.old_value, e.new_value) for e in new] == [
        ("Phone calls", False, True)
    ]
    assert new[0].actor == user and new[0].source == ConsentSource.STAFF
    # The state is always the last event's new value.
    latest = {}
    for event in events(contact):
        latest[event.purpose.name] = event.new_value
    assert states(contact) == latest
    with system_code():
        audit = AuditEvent.objects.filter(action="consent.changed").order_by("pk")
        assert audit.count() == 2
        assert audit.last().data["changes"] == {"Phone calls": [False, True]}
        assert audit.last().actor == user


def test_a_long_history_says_how_much_is_shown(world, client):
    contact = make_contact(world.a)
    newsletter = by_name(world.a)["Newsletter"]
    with system_code():
        ConsentEvent.objects.bulk_create(
            ConsentEvent(
                entity=world.a,
                contact=contact,
                purpose=newsletter,
                old_value=bool(i % 2),
                new_value=not i % 2,
                source=ConsentSource.STAFF,
            )
            for i in range(101)
        )
    page = work_in(client, world.users[Role.GUEST], world.a).get(consent_url(contact))
    assert "The latest 100 of 101 changes." in page.content.decode()


def test_a_save_without_changes_writes_nothing(world, client):
    contact = make_contact(world.a)
    work_in(client, world.users[Role.COLLECTOR], world.a)
    client.post(consent_url(contact), choices(world.a, "Newsletter", contact=contact))
    before_states = states(contact)
    before_events = len(events(contact))
    before_audit = AuditEvent.objects.count()

    page = client.post(
        consent_url(contact), choices(world.a, "Newsletter", contact=contact), follow=True
    )

    assert "Nothing changed." in page.content.decode()
    assert states(contact) == before_states
    assert len(events(contact)) == before_events
    assert AuditEvent.objects.count() == before_audit


@pytest.mark.parametrize("role", VIEWERS)
def test_roles_without_edit_rights_view_but_cannot_change(
    world, client, role, django_capture_on_commit_callbacks
):
    contact = make_contact(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            contact, {by_name(world.a)["Newsletter"]: True}, source=ConsentSource.STAFF
        )
    work_in(client, world.users[role], world.a)

    page = client.get(consent_url(contact))

    assert page.status_code == 200
    content = page.content.decode()
    assert "Newsletter" in content
    assert "Save consents" not in content
    assert "Email a consent link" not in content
    assert len(re.findall(r'type="checkbox"[^>]*disabled', content)) == len(DEFAULT_NAMES)

    denied = client.post(consent_url(contact), choices(world.a, "Phone calls", contact=contact))
    assert denied.status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{consent_url(contact)}send-link/").status_code == 403
    assert states(contact) == {"Newsletter": True}
    assert len(events(contact)) == 1
    assert mail.outbox == []


def test_contacts_of_other_entities_are_not_found(world, client):
    other = make_contact(world.b, name="Sven Svensson")
    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.get(consent_url(other)).status_code == 404
    assert (
        client.post(consent_url(other), choices(world.b, "Newsletter", contact=other)).status_code
        == 404
    )
    assert client.get(f"/customers/contacts/{other.pk}/consent-form/").status_code == 404
    assert client.post(f"{consent_url(other)}send-link/").status_code == 404
    assert events(other) == []


def test_the_history_is_listed_on_the_consent_page(world, client):
    contact = make_contact(world.a)
    editor = world.users[Role.CREDIT_MANAGER]
    work_in(client, editor, world.a)
    client.post(consent_url(contact), choices(world.a, "Newsletter", contact=contact))
    client.post(consent_url(contact), choices(world.a, contact=contact))
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            contact,
            {names["Reminders by SMS"]: True},
            source=ConsentSource.SELF_SERVICE,
            ip="198.51.100.7",
            user_agent="Firefox/140",
            policy_version="v3",
        )

    content = client.get(consent_url(contact)).content.decode()

    body = content.split("<h2>History</h2>", 1)[1]
    rows = re.findall(r"<tr>\s*<td>.*?</tr>", body, re.S)
    assert len(rows) == 7  # five first answers, one change, one self-service change
    newest = rows[0]
    assert "Reminders by SMS" in newest and "not granted → granted" in newest
    assert "The contact (self-service)" in newest
    assert "198.51.100.7" in newest and "Firefox/140" in newest and "v3" in newest
    assert "Newsletter" in rows[1] and "granted → not granted" in rows[1]
    assert f"Staff: {editor.email}" in rows[1]
    assert sum("not recorded → " in row for row in rows) == 5


# --- Consent form ----------------------------------------------------------------------------


def form_world(world):
    contact = make_contact(world.a, title="CFO", phone="+4791234567")
    set_privacy(world.a, version="v7")
    add_processor(world.a, agreement_date=date(2026, 2, 1))
    add_processor(world.b, name="Svensk Post AB")
    with tenant_scope(world.a):
        services.set_consents(
            contact, {by_name(world.a)["Newsletter"]: True}, source=ConsentSource.STAFF
        )
    return contact


def test_the_consent_form_shows_consents_policy_and_processors(world, client):
    contact = form_world(world)

    page = work_in(client, world.users[Role.GUEST], world.a).get(
        f"/customers/contacts/{contact.pk}/consent-form/"
    )

    assert page.status_code == 200
    content = page.content.decode()
    assert "Kari Nordmann, CFO" in content and "Fjellvik Transport AS (C-1)" in content
    items = re.findall(
        r'<span class="consent (?:yes|no)">(Granted|Not granted)</span> (.*?) <small>', content
    )
    assert items == [
        ("Granted" if name == "Newsletter" else "Not granted", name) for name in DEFAULT_NAMES
    ]
    assert 'href="https://acme.example/privacy"' in content and "(version v7)" in content
    assert "Mailfabrikken AS" in content and "2026-02-01" in content
    assert "Svensk Post AB" not in content


def test_the_consent_form_pdf(world, client):
    contact = form_world(world)

    response = work_in(client, world.users[Role.GUEST], world.a).get(
        f"/customers/contacts/{contact.pk}/consent-form/?format=pdf"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Cache-Control"] == "no-store"
    assert response.content.startswith(b"%PDF")
    assert len(response.content) > 1000
    text = pdf_text(response.content)
    assert "Kari Nordmann, CFO" in text
    assert "Fjellvik Transport AS (C-1)" in text
    assert "Newsletter (Email)" in text
    assert "https://acme.example/privacy (version v7)" in text
    assert "Mailfabrikken AS - Email delivery - Norway, agreement 2026-02-01" in text
    assert "Svensk Post AB" not in text


# --- Sending the link --------------------------------------------------------------------------


def test_sending_a_link_emails_the_contact(world, client, django_capture_on_commit_callbacks):
    contact = make_contact(world.a)
    editor = world.users[Role.SALES_ADMIN]
    work_in(client, editor, world.a)

    # A customer email: queued in the outbox, sent by the task once the request commits.
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(f"{consent_url(contact)}send-link/", follow=True)

    assert "A link to their consent page was emailed to kari@fjellvik.example." in (
        page.content.decode()
    )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["kari@fjellvik.example"]
    assert "Acme Norge AS" in message.subject
    assert "the link works for 30 days" in message.body
    urls = re.findall(r"http://testserver/c/[^/\s]+/", message.body)
    assert len(urls) == 1
    event = AuditEvent.objects.get(action="consent.link_sent")
    assert (event.actor, event.data) == (editor, {"contact": contact.pk})
    # It went through the customers' outbox, which keeps no working token once sent.
    with system_code():
        [row] = OutgoingEmail.objects.all()
    assert (row.kind, row.status, row.to, row.attempts) == (
        "consent_link",
        "sent",
        message.to[0],
        1,
    )
    assert (row.contact_id, row.customer_id, row.created_by) == (
        contact.pk,
        contact.customer_id,
        editor,
    )
    assert urls[0].split("/")[-2] not in row.text_body

    client.logout()
    opened = client.get(urls[0].removeprefix("http://testserver"), follow=True)
    assert opened.status_code == 200
    assert "Hello Kari Nordmann." in opened.content.decode()


def test_a_contact_without_email_gets_no_link(world, client, django_capture_on_commit_callbacks):
    contact = make_contact(world.a, email="")
    work_in(client, world.users[Role.ADMIN], world.a)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(f"{consent_url(contact)}send-link/", follow=True)

    assert "Kari Nordmann has no email address; add one first." in page.content.decode()
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action="consent.link_sent").exists()


def test_the_link_follows_the_entitys_link_lifetime(
    world, client, django_capture_on_commit_callbacks
):
    set_link_days(world.a, 7)
    contact = make_contact(world.a)
    work_in(client, world.users[Role.ADMIN], world.a)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{consent_url(contact)}send-link/")
    assert "the link works for 7 days" in mail.outbox[0].body
