"""Communication consents: default purposes, the Contacts tab, staff editing with its
ledger, privacy settings and processors, the consent form (page and PDF), the emailed
self-service link and the public page it opens (no account; a signed, expiring token)."""

import re
import zlib
from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent import services
from consent.anonymisation import anonymise
from consent.models import (
    ConsentEvent,
    ConsentPurpose,
    ConsentSource,
    ConsentState,
    DataProcessor,
    PrivacySettings,
)
from customers.models import ContactPerson, Customer
from documents.models import OutgoingEmail
from security.models import AuditEvent, SecurityPolicy
from tests.conftest import work_in

DEFAULT_NAMES = [
    "Invoices and reminders by email",
    "Reminders by SMS",
    "Phone calls",
    "Newsletter",
    "Letters by post",
]
EDITORS = [Role.MAIN_ADMIN, Role.ADMIN, Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES_ADMIN]
VIEWERS = [Role.SALES, Role.GUEST]
ADMINS = [Role.ADMIN, Role.MAIN_ADMIN]
STAFF = [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]
NOW = "2026-06-01 12:00Z"
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


# --- Helpers ---------------------------------------------------------------------------------


def make_contact(entity, *, number="C-1", customer_name="Fjellvik Transport AS", **fields):
    fields.setdefault("name", "Kari Nordmann")
    fields.setdefault("email", "kari@fjellvik.example")
    with system_code():
        customer = Customer.objects.filter(entity=entity, number=number).first()
        if customer is None:
            customer = Customer.objects.create(entity=entity, number=number, name=customer_name)
        return ContactPerson.objects.create(entity=entity, customer=customer, **fields)


def purposes(entity):
    with tenant_scope(entity):
        return services.purposes_for(entity)


def by_name(entity):
    return {p.name: p for p in purposes(entity)}


def choices(entity, *granted_names, contact):
    """POST data ticking the named purposes, from the page as loaded now: each box also
    carries what it showed (`was_<id>`: the answer and the ledger's newest entry)."""
    markers = {True: "on", False: "off", None: "none"}
    named = by_name(entity)
    with tenant_scope(entity):
        seen = services.seen_now(contact, list(named.values()))
    data = {}
    for name, p in named.items():
        data[f"was_{p.pk}"] = f"{markers[seen[p.pk].answer]}.{seen[p.pk].version}"
        if name in granted_names:
            data[f"purpose_{p.pk}"] = "on"
    return data


def states(contact):
    with system_code():
        return {
            s.purpose.name: s.granted
            for s in ConsentState.objects.filter(contact=contact).select_related("purpose")
        }


def events(contact):
    with system_code():
        return list(
            ConsentEvent.objects.filter(contact=contact)
            .select_related("purpose", "actor")
            .order_by("pk")
        )


def consent_url(contact):
    return f"/customers/contacts/{contact.pk}/consent/"


def link_url(contact):
    return f"/c/{services.make_link_token(contact)}/"


def set_privacy(entity, url="https://acme.example/privacy", version="v1"):
    with system_code():
        PrivacySettings.objects.update_or_create(
            entity=entity, defaults={"policy_url": url, "policy_version": version}
        )


def add_processor(entity, name="Mailfabrikken AS", **fields):
    fields.setdefault("purpose", "Email delivery")
    fields.setdefault("country", "Norway")
    with system_code():
        return DataProcessor.objects.create(entity=entity, name=name, **fields)


def set_link_days(entity, days):
    SecurityPolicy.objects.update_or_create(entity=entity, defaults={"interactive_link_days": days})


def pdf_text(data):
    """The text drawn by fpdf2's core-font text operators, from every (deflated) stream."""
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            chunks.append(zlib.decompress(stream))
        except zlib.error:
            chunks.append(stream)
    strings = re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", b"\n".join(chunks))
    return "\n".join(re.sub(rb"\\(.)", rb"\1", s).decode("latin-1") for s in strings)


def assert_private(response):
    for header, value in PRIVATE_HEADERS.items():
        assert response.headers.get(header) == value, header


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


# --- Privacy settings --------------------------------------------------------------------------


PRIVACY_URL = "/settings/privacy/"


@pytest.mark.parametrize("role", ADMINS)
def test_admins_set_the_privacy_policy(world, client, role):
    admin = world.users[role]
    work_in(client, admin, world.a)
    assert client.get(PRIVACY_URL).status_code == 200

    page = client.post(
        PRIVACY_URL,
        {"policy_url": "https://acme.example/privacy", "policy_version": "2026-03"},
        follow=True,
    )

    assert "The privacy settings were saved." in page.content.decode()
    with system_code():
        privacy = PrivacySettings.objects.get(entity=world.a)
    assert (privacy.policy_url, privacy.policy_version) == (
        "https://acme.example/privacy",
        "2026-03",
    )
    event = AuditEvent.objects.get(action="privacy.settings.changed")
    assert (event.actor, event.entity) == (admin, world.a)
    assert event.data == {
        "changes": {
            "policy_url": ["", "https://acme.example/privacy"],
            "policy_version": ["", "2026-03"],
        }
    }


def test_an_invalid_policy_url_is_explained_and_not_saved(world, client):
    set_privacy(world.a)
    work_in(client, world.users[Role.ADMIN], world.a)

    page = client.post(PRIVACY_URL, {"policy_url": "not a url", "policy_version": "v2"})

    assert page.status_code == 200
    assert "Enter a valid URL." in page.content.decode()
    with system_code():
        privacy = PrivacySettings.objects.get(entity=world.a)
    assert (privacy.policy_url, privacy.policy_version) == ("https://acme.example/privacy", "v1")
    assert not AuditEvent.objects.filter(action="privacy.settings.changed").exists()


@pytest.mark.parametrize("role", ADMINS)
def test_admins_add_and_remove_processors_audited(world, client, role):
    admin = world.users[role]
    work_in(client, admin, world.a)

    page = client.post(
        PRIVACY_URL,
        {
            "action": "processor",
            "name": "Mailfabrikken AS",
            "purpose": "Email delivery",
            "country": "Norway",
            "agreement_date": "2026-02-01",
        },
        follow=True,
    )

    assert "Mailfabrikken AS was added." in page.content.decode()
    with system_code():
        processor = DataProcessor.objects.get()
    assert (processor.entity, processor.agreement_date) == (world.a, date(2026, 2, 1))
    added = AuditEvent.objects.get(action="privacy.processor.added")
    assert (added.actor, added.entity, added.data) == (admin, world.a, {"name": "Mailfabrikken AS"})
    listed = client.get(PRIVACY_URL).content.decode()
    assert "Mailfabrikken AS" in listed and "2026-02-01" in listed

    missing = client.post(PRIVACY_URL, {"action": "processor", "name": "Half AS"})
    assert missing.status_code == 200
    assert "This field is required." in missing.content.decode()

    remove = f"/settings/privacy/processors/{processor.pk}/remove/"
    ask = client.post(remove)
    assert "<h1>Remove Mailfabrikken AS?</h1>" in ask.content.decode()
    with system_code():
        assert DataProcessor.objects.exists()  # not before the second press
    removed_page = client.post(remove, {"confirm": "yes"}, follow=True)

    assert "Mailfabrikken AS was removed." in removed_page.content.decode()
    with system_code():
        assert not DataProcessor.objects.exists()
    removed = AuditEvent.objects.get(action="privacy.processor.removed")
    assert (removed.actor, removed.data) == (admin, {"name": "Mailfabrikken AS"})


@pytest.mark.parametrize("role", STAFF)
def test_staff_cannot_reach_privacy_settings(world, client, role):
    processor = add_processor(world.a)
    work_in(client, world.users[role], world.a)
    assert client.get(PRIVACY_URL).status_code == 403
    assert client.post(PRIVACY_URL, {"policy_url": "https://x.example"}).status_code == 403
    data = {"action": "processor", "name": "X", "purpose": "Y", "country": "Z"}
    assert client.post(PRIVACY_URL, data).status_code == 403
    remove = f"/settings/privacy/processors/{processor.pk}/remove/"
    assert client.post(remove).status_code == 403
    with system_code():
        assert DataProcessor.objects.count() == 1
        assert not PrivacySettings.objects.exclude(policy_url="").exists()


def test_another_entitys_processor_cannot_be_removed(world, client):
    theirs = add_processor(world.b, name="Svensk Post AB")
    work_in(client, world.users[Role.ADMIN], world.a)
    page = client.get(PRIVACY_URL).content.decode()
    assert "Svensk Post AB" not in page
    assert (
        client.post(
            f"/settings/privacy/processors/{theirs.pk}/remove/", {"confirm": "yes"}
        ).status_code
        == 404
    )
    with system_code():
        assert DataProcessor.objects.filter(pk=theirs.pk).exists()


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
    opened = client.get(urls[0].removeprefix("http://testserver"))
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


# --- The self-service page -----------------------------------------------------------------------


@pytest.fixture
def linked(world):
    """A contact of entity a with a privacy policy and a processor, and its link."""
    contact = make_contact(world.a)
    set_privacy(world.a, version="v1")
    add_processor(world.a)
    add_processor(world.b, name="Svensk Post AB")
    return contact


def test_opening_the_link_shows_the_page_and_changes_nothing(world, client, linked):
    response = client.get(link_url(linked))

    assert response.status_code == 200
    content = response.content.decode()
    assert "How may Acme Norge AS contact you?" in content
    assert "Hello Kari Nordmann." in content
    assert 'href="https://acme.example/privacy"' in content and "(version v1)" in content
    assert "Mailfabrikken AS" in content and "Svensk Post AB" not in content
    for name in DEFAULT_NAMES:
        assert name in content
    assert 'name="policy_version" value="v1"' in content
    assert_private(response)
    with system_code():
        assert not ConsentEvent.objects.exists()
        assert not ConsentState.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="consent.").exists()


def test_saving_on_the_page_writes_self_service_events(world, client, linked):
    url = link_url(linked)
    data = {
        "policy_version": "v1",
        **choices(world.a, "Newsletter", "Reminders by SMS", contact=linked),
    }

    response = client.post(
        url, data, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Mozilla/5.0 (Test) Firefox/140"
    )

    assert response.status_code == 200
    assert "Your choices were saved. Thank you." in response.content.decode()
    assert_private(response)
    written = events(linked)
    assert len(written) == len(DEFAULT_NAMES)
    for event in written:
        assert event.source == ConsentSource.SELF_SERVICE
        assert event.actor is None
        assert event.ip == "198.51.100.7"
        assert event.user_agent == "Mozilla/5.0 (Test) Firefox/140"
        assert event.privacy_policy_version == "v1"
        assert event.old_value is None
    assert states(linked) == {
        name: name in {"Newsletter", "Reminders by SMS"} for name in DEFAULT_NAMES
    }
    # The page shows what was saved.
    assert (
        len(re.findall(r'type="checkbox" name="purpose_\d+" checked', response.content.decode()))
        == 2
    )

    again = client.post(
        url, {"policy_version": "v1", **choices(world.a, "Reminders by SMS", contact=linked)}
    )
    assert again.status_code == 200
    assert [(e.purpose.name, e.old_value, e.new_value) for e in events(linked)[5:]] == [
        ("Newsletter", True, False)
    ]


@pytest.mark.parametrize(
    "origin",
    [
        "http://testserver",
        "null",
    ],
    ids=["same-origin", "null-as-browsers-send-under-no-referrer"],
)
def test_the_form_passes_the_csrf_check_as_a_browser_submits_it(world, linked, origin):
    browser = Client(enforce_csrf_checks=True)
    url = link_url(linked)
    page = browser.get(url)
    assert page["Referrer-Policy"] == "no-referrer"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]

    response = browser.post(
        url,
        {
            "csrfmiddlewaretoken": token,
            "policy_version": "v1",
            **choices(world.a, "Newsletter", contact=linked),
        },
        HTTP_ORIGIN=origin,
    )

    assert response.status_code == 200
    assert "Your choices were saved. Thank you." in response.content.decode()
    assert len(events(linked)) == len(DEFAULT_NAMES)


def test_a_policy_changed_while_the_page_was_open_changes_nothing(world, client, linked):
    url = link_url(linked)
    assert 'value="v1"' in client.get(url).content.decode()
    set_privacy(world.a, version="v2")

    response = client.post(
        url, {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "The privacy policy changed while the page was open." in content
    assert "Your choices were saved" not in content
    assert 'name="policy_version" value="v2"' in content
    assert events(linked) == [] and states(linked) == {}

    saved = client.post(
        url, {"policy_version": "v2", **choices(world.a, "Newsletter", contact=linked)}
    )
    assert "Your choices were saved" in saved.content.decode()
    assert {e.privacy_policy_version for e in events(linked)} == {"v2"}
    # The ticks sent with the old version were shown again, not dropped.
    newsletter = by_name(world.a)["Newsletter"]
    assert f'name="purpose_{newsletter.pk}" checked' in content


# --- Pages left open ----------------------------------------------------------------------


def test_a_staff_page_left_open_does_not_undo_the_contacts_newer_choice(world, client, linked):
    """Staff open the consent page; meanwhile the contact withdraws the newsletter on their
    own page; staff then tick phone calls only. The withdrawal stands."""
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            linked,
            {p: p.name == "Newsletter" for p in names.values()},
            source=ConsentSource.IMPORT,
        )
    staff_page = choices(world.a, "Newsletter", "Phone calls", contact=linked)  # loaded now
    customer = client.post(
        link_url(linked), {"policy_version": "v1", **choices(world.a, contact=linked)}
    )
    assert "Your choices were saved" in customer.content.decode()
    assert states(linked)["Newsletter"] is False

    admin = work_in(Client(), world.users[Role.ADMIN], world.a)
    saved = admin.post(consent_url(linked), staff_page, follow=True)

    assert "Saved 1 change(s)" in saved.content.decode()
    assert states(linked)["Newsletter"] is False
    assert states(linked)["Phone calls"] is True
    last = events(linked)[-1]
    assert (last.purpose.name, last.new_value, last.source) == (
        "Phone calls",
        True,
        ConsentSource.STAFF,
    )


def test_a_box_both_answered_differently_is_not_saved_over_the_other_answer(world, client, linked):
    """Nothing recorded; staff open the page; the contact answers on their own page (yes to
    the newsletter, no to the rest); staff then tick phone calls and the newsletter."""
    names = by_name(world.a)
    admin = work_in(client, world.users[Role.ADMIN], world.a)
    staff_page = choices(world.a, "Phone calls", "Newsletter", contact=linked)
    Client().post(
        link_url(linked), {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
    )
    before = len(events(linked))

    conflict = admin.post(consent_url(linked), staff_page)

    content = conflict.content.decode()
    assert conflict.status_code == 200
    assert "While this page was open, someone else changed: Phone calls." in content
    assert "nothing was saved" in content
    assert len(events(linked)) == before
    assert states(linked)["Phone calls"] is False
    # Phone calls shows the contact's answer; the newsletter keeps the tick made here.
    assert f'name="purpose_{names["Phone calls"].pk}" checked' not in content
    assert re.search(f'name="was_{names["Phone calls"].pk}" value="off[.]\\d+"', content)
    assert f'name="purpose_{names["Newsletter"].pk}" checked' in content

    # Saving again, having looked, ticks phone calls over the contact's "no".
    resubmit = dict(re.findall(r'name="(was_\d+)" value="([\w.]+)"', content))
    resubmit.update({f"purpose_{names[n].pk}": "on" for n in ("Phone calls", "Newsletter")})
    again = admin.post(consent_url(linked), resubmit, follow=True)
    assert "Saved 1 change(s)" in again.content.decode()
    assert states(linked)["Phone calls"] is True and states(linked)["Newsletter"] is True


def test_a_box_changed_and_changed_back_meanwhile_still_clashes(world, client, linked):
    """The ledger, not the value, tells whether someone answered since the page loaded."""
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(linked, {names["Phone calls"]: True}, source=ConsentSource.STAFF)
    admin = work_in(client, world.users[Role.ADMIN], world.a)
    staff_page = choices(world.a, contact=linked)  # shows phone calls granted; unticked here
    for granted in (False, True):  # the contact withdraws, then grants again
        with tenant_scope(world.a):
            services.set_consents(
                linked, {names["Phone calls"]: granted}, source=ConsentSource.SELF_SERVICE
            )

    conflict = admin.post(consent_url(linked), staff_page)

    assert "While this page was open, someone else changed: Phone calls." in (
        conflict.content.decode()
    )
    assert states(linked)["Phone calls"] is True


def test_after_a_clash_every_box_not_changed_here_shows_its_answer_now(world, client, linked):
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            linked, {names["Invoices and reminders by email"]: True}, source=ConsentSource.IMPORT
        )
    admin = work_in(client, world.users[Role.ADMIN], world.a)
    # Loaded with email granted; phone calls ticked here.
    staff_page = choices(world.a, "Invoices and reminders by email", "Phone calls", contact=linked)
    Client().post(  # meanwhile: email withdrawn, SMS granted, the rest answered "no"
        link_url(linked),
        {"policy_version": "v1", **choices(world.a, "Reminders by SMS", contact=linked)},
    )

    content = admin.post(consent_url(linked), staff_page).content.decode()

    assert "someone else changed: Phone calls." in content
    ticked = {name for name, p in names.items() if f'name="purpose_{p.pk}" checked' in content}
    assert ticked == {"Reminders by SMS"}  # as stored now; phone calls shows the "no"


def test_the_contacts_page_left_open_does_not_undo_a_staff_change(world, client, linked):
    names = by_name(world.a)
    customer_page = choices(world.a, contact=linked)  # nothing recorded yet: all "none"
    with tenant_scope(world.a):
        services.set_consents(linked, {names["Phone calls"]: True}, source=ConsentSource.STAFF)

    client.post(link_url(linked), {"policy_version": "v1", **customer_page})

    assert states(linked)["Phone calls"] is True  # not reset by the box left unticked
    assert states(linked)["Newsletter"] is False  # a first answer is still recorded


def dead(response, message):
    assert response.status_code == 410
    content = response.content.decode()
    assert f"<h1>{message}</h1>" in content
    for data in ["Kari Nordmann", "kari@fjellvik.example", "Fjellvik", "Acme Norge AS", "Anonym"]:
        assert data not in content
    assert "<form" not in content
    assert_private(response)
    return content


def tampered_tokens(token):
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return {
        "changed": flipped,
        "truncated": token[:-3],
        "extended": token + "x",
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("kind", ["changed", "truncated", "extended", "garbage"])
def test_a_tampered_link_shows_a_clear_page(world, client, linked, kind):
    token = tampered_tokens(services.make_link_token(linked))[kind]

    dead(client.get(f"/c/{token}/"), "This link is not valid.")
    dead(
        client.post(
            f"/c/{token}/",
            {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)},
        ),
        "This link is not valid.",
    )
    assert events(linked) == []


def test_a_link_of_another_kind_does_not_open_a_consent_page(world, client, linked):
    from customers.links import create_link
    from customers.models import CustomerLink

    with system_code():
        _, token = create_link(
            customer=linked.customer, kind=CustomerLink.Kind.INTERACTIVE, contact=linked
        )
    dead(client.get(f"/c/{token}/"), "This link is not valid.")


def test_each_link_reaches_only_its_own_contact(world, client, linked):
    theirs = make_contact(world.b, name="Sven Svensson", email="sven@example.se")
    mine = client.get(link_url(linked)).content.decode()
    assert "Kari Nordmann" in mine and "Sven" not in mine
    assert "Hello Sven Svensson." in client.get(link_url(theirs)).content.decode()


def test_the_database_keeps_only_the_hash_and_logs_each_use(world, client, linked):
    from customers.models import CustomerLink, LinkUse

    token = services.make_link_token(linked)
    client.get(f"/c/{token}/", HTTP_USER_AGENT="Mail scanner 1.0")
    with system_code():
        link = CustomerLink.objects.get(kind=CustomerLink.Kind.CONSENT)
        [use] = LinkUse.objects.filter(link=link)
    assert token not in link.token_hash
    assert use.user_agent == "Mail scanner 1.0"
    assert events(linked) == []  # a visit is logged, but changes no consent


def test_a_consent_token_at_the_document_address_is_sent_to_its_page_uncounted(
    world, client, linked
):
    from customers.models import CustomerLink, LinkUse

    token = services.make_link_token(linked)
    response = client.get(f"/l/{token}/")
    assert response.status_code == 302
    assert response["Location"] == f"/c/{token}/"
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    with system_code():
        link = CustomerLink.objects.get(kind=CustomerLink.Kind.CONSENT)
        assert link.uses == 0 and not LinkUse.objects.filter(link=link).exists()
    assert "Hello Kari Nordmann." in client.get(response["Location"]).content.decode()
    with system_code():
        assert LinkUse.objects.filter(link=link).count() == 1


def test_a_withdrawn_consent_link_stops_working(world, client, linked):
    from customers.links import revoke
    from customers.models import CustomerLink

    url = link_url(linked)
    with system_code():
        revoke(CustomerLink.objects.get(kind=CustomerLink.Kind.CONSENT), actor=None)
    dead(client.get(url), "This link was withdrawn.")


@pytest.mark.parametrize(
    ("days", "seconds_after", "valid"),
    [
        (30, 30 * 86400 - 1, True),
        (30, 30 * 86400 + 1, False),
        (7, 7 * 86400 - 1, True),
        (7, 7 * 86400 + 1, False),
    ],
    ids=["30d-just-before", "30d-just-after", "7d-just-before", "7d-just-after"],
)
def test_the_link_expires_after_the_entitys_interactive_link_days(
    world, client, linked, days, seconds_after, valid
):
    if days != 30:
        set_link_days(world.a, days)
    with time_machine.travel(NOW, tick=False) as traveller:
        url = link_url(linked)
        traveller.shift(timedelta(seconds=seconds_after))
        response = client.get(url)
        posted = client.post(
            url, {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
        )
    if valid:
        assert response.status_code == 200
        assert "Hello Kari Nordmann." in response.content.decode()
        assert "Your choices were saved" in posted.content.decode()
        assert len(events(linked)) == len(DEFAULT_NAMES)
    else:
        dead(response, "This link has expired.")
        dead(posted, "This link has expired.")
        assert events(linked) == []


def test_shortening_the_link_lifetime_expires_existing_links(world, client, linked):
    with time_machine.travel(NOW, tick=False) as traveller:
        url = link_url(linked)
        traveller.shift(timedelta(days=10))
        assert client.get(url).status_code == 200
        set_link_days(world.a, 7)
        dead(client.get(url), "This link has expired.")
        # Lengthening it again revives the link: the age is inside the signature.
        set_link_days(world.a, 14)
        assert client.get(url).status_code == 200


def test_after_anonymisation_the_link_is_no_longer_valid(world, client, linked):
    url = link_url(linked)
    assert client.get(url).status_code == 200
    with tenant_scope(world.a):
        anonymise(linked.customer_id, confirmation="C-1", actor=world.users[Role.ADMIN])

    dead(client.get(url), "This link is no longer valid.")
    dead(
        client.post(
            url, {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
        ),
        "This link is no longer valid.",
    )
    assert events(linked) == []


def test_a_link_to_a_deleted_contact_is_no_longer_valid(world, client, linked):
    url = link_url(linked)
    with system_code():
        ContactPerson.objects.filter(pk=linked.pk).delete()
    dead(client.get(url), "This link is not valid.")  # deleted with its contact
