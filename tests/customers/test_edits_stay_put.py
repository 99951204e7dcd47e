"""A customer or contact edit changes only what the user changed, and never undoes an
anonymisation.

- An edit whose form was built before an anonymisation committed is refused with a
  message on the page; the row stays anonymised (PostgreSQL, real threads). An edit that
  holds the customer's lock first makes the anonymisation wait, and the anonymisation
  then erases what it saved.
- Fields the user did not touch stay byte for byte as stored: an email address with a
  non-ASCII domain that Chromium submits as punycode (its email input does), an address
  resubmitted with the CRLF newlines browsers send. The audit lists only real changes.
- A new text is stored with LF newlines, from the forms and from a CSV import.
"""

import threading

import pytest
from django.db import connection, transaction

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent.anonymisation import AnonymisationRefused, anonymise
from customers import csv_import, services
from customers.forms import ContactForm, CustomerForm, SecretForm
from customers.links import create_link
from customers.models import ANONYM, AccessGroup, ContactPerson, Customer, CustomerLink, Secret
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import WAIT, blocked_on_a_lock, in_thread

NUMBER = "B-100"
NAME = "Bodø Fisk AS"
IDN_EMAIL = "post@bodø.example"
# What Chromium's <input type="email"> submits for IDN_EMAIL (it converts the domain).
IDN_EMAIL_AS_SUBMITTED = "post@xn--bod-2na.example"
MEANWHILE = "This customer was anonymised meanwhile; nothing was saved."

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: row locks (SELECT ... FOR UPDATE) and concurrent "
    "connections; SQLite serialises every writer, so there is no race to test",
)


def anonymise_in_another_session(customer_pk, entity_pk, admin):
    """Anonymise (and commit) from another connection, as another admin's request would."""

    def go():
        with tenant_scope(entity_pk):
            anonymise(customer_pk, confirmation=NUMBER, actor=admin)
        return "anonymised"

    outcomes = {}
    thread = in_thread(go, outcomes, "anonymise")
    thread.join(WAIT)
    assert not thread.is_alive() and outcomes == {"anonymise": "anonymised"}, outcomes


def anonymise_once_valid(monkeypatch, form_class, customer, entity, admin):
    """The edit's form is built from the row and valid; then another admin's anonymisation
    commits, before the edit saves."""
    built = form_class.clean

    def clean_then_anonymise(form):
        cleaned = built(form)
        anonymise_in_another_session(customer.pk, entity.pk, admin)
        return cleaned

    monkeypatch.setattr(form_class, "clean", clean_then_anonymise)


def stored(model, pk, *fields):
    with system_code():
        return model.objects.values(*fields).get(pk=pk)


def page_text(response):
    return response.content.decode()


@pytest.fixture
def bodo(db, world):
    """A customer with a non-ASCII email domain, an address with LF newlines and a
    delivery address stored (long ago) with CRLF ones, and a contact."""
    with system_code():
        customer = Customer.objects.create(
            entity=world.a,
            number=NUMBER,
            name=NAME,
            email=IDN_EMAIL,
            address="Storgata 1\n8006 Bodø",
            delivery_address="Kaia 2\r\n8006 Bodø",
            notes="Fersk fisk\nhver tirsdag",
        )
        contact = ContactPerson.objects.create(
            entity=world.a,
            customer=customer,
            name="Kari Nordmann",
            title="Daglig leder",
            email="kari@bodø.example",
            notes="Ring før kl. 10\nikke fredag",
        )
    return customer, contact


def as_a_browser_posts(customer, **changes):
    """The edit form as Chromium submits it untouched: the email domain in punycode and
    every textarea's newlines as CRLF; then the user's `changes`."""
    data = {
        "number": customer.number,
        "name": customer.name,
        "organisation_number": customer.organisation_number,
        "email": IDN_EMAIL_AS_SUBMITTED,
        "phone": customer.phone,
        "address": customer.address.replace("\r\n", "\n").replace("\n", "\r\n"),
        "delivery_address": customer.delivery_address.replace("\r\n", "\n").replace("\n", "\r\n"),
        "collector": customer.collector_id or "",
        "notes": customer.notes.replace("\n", "\r\n"),
    }
    data.update(changes)
    return data


def contact_as_a_browser_posts(contact, **changes):
    data = {
        "name": contact.name,
        "title": contact.title,
        "email": "kari@xn--bod-2na.example",
        "phone": contact.phone,
        "notes": contact.notes.replace("\n", "\r\n"),
    }
    data.update(changes)
    return data


# --- Anonymisation is final (PostgreSQL, real threads) -----------------------------------


@pytest.fixture
def racing(transactional_db, world):
    with system_code():
        customer = Customer.objects.create(
            entity=world.a, number=NUMBER, name=NAME, email=IDN_EMAIL, address="Storgata 1"
        )
        contact = ContactPerson.objects.create(
            entity=world.a, customer=customer, name="Kari Nordmann", email="kari@bodø.example"
        )
    return customer, contact


def anonymised_row(customer_pk):
    return stored(Customer, customer_pk, "name", "email", "address", "anonymised_at")


@postgresql_only
def test_a_customer_edit_begun_before_an_anonymisation_is_refused(
    world, racing, client, monkeypatch
):
    customer, _ = racing
    admin = world.users[Role.ADMIN]
    anonymise_once_valid(monkeypatch, CustomerForm, customer, world.a, admin)
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/{customer.pk}/edit/",
        as_a_browser_posts(customer, name="Bodø Fisk og Vilt AS", email="ny@bodø.example"),
        follow=True,
    )

    assert response.status_code == 200
    assert MEANWHILE in page_text(response)
    assert response.redirect_chain[-1][0] == f"/customers/{customer.pk}/"
    row = anonymised_row(customer.pk)
    assert (row["name"], row["email"], row["address"]) == (ANONYM, "", "")
    assert row["anonymised_at"] is not None
    assert not AuditEvent.objects.filter(action="customer.updated").exists()


@postgresql_only
def test_a_contact_edit_begun_before_an_anonymisation_is_refused(
    world, racing, client, monkeypatch
):
    customer, contact = racing
    admin = world.users[Role.ADMIN]
    anonymise_once_valid(monkeypatch, ContactForm, customer, world.a, admin)
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/contacts/{contact.pk}/edit/",
        {"name": "Kari Nordmann", "title": "CFO", "email": "kari@bodø.example", "phone": ""},
        follow=True,
    )

    assert response.status_code == 200
    assert MEANWHILE in page_text(response)
    assert stored(ContactPerson, contact.pk, "name", "title", "email") == {
        "name": ANONYM,
        "title": "",
        "email": "",
    }
    assert anonymised_row(customer.pk)["anonymised_at"] is not None
    assert not AuditEvent.objects.filter(action="customer.contact.updated").exists()


@postgresql_only
def test_a_new_contact_begun_before_an_anonymisation_is_refused(world, racing, client, monkeypatch):
    customer, _ = racing
    admin = world.users[Role.ADMIN]
    anonymise_once_valid(monkeypatch, ContactForm, customer, world.a, admin)
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/{customer.pk}/contacts/new/",
        {"name": "Ola Hansen", "email": "ola@bodø.example"},
        follow=True,
    )

    assert response.status_code == 200
    assert MEANWHILE in page_text(response)
    with system_code():
        assert not ContactPerson.objects.filter(name="Ola Hansen").exists()


@postgresql_only
def test_an_edit_holding_the_lock_makes_the_anonymisation_wait(world, racing):
    """The edit locked the customer first: the anonymisation waits for it to commit, then
    erases what it saved. Never the other way round."""
    customer, _ = racing
    entity, admin, editor = world.a, world.users[Role.ADMIN], world.users[Role.CREDIT_MANAGER]
    saved, release, outcomes = threading.Event(), threading.Event(), {}

    def edit_and_hold():
        with tenant_scope(entity.pk), transaction.atomic():
            form = CustomerForm(
                as_a_browser_posts(customer, name="Bodø Fisk og Vilt AS"),
                instance=Customer.objects.get(pk=customer.pk),
                entity=entity,
            )
            assert form.is_valid(), form.errors
            services.save_customer(form, actor=editor, request=None)
            saved.set()
            # Keep the transaction (and the customer's lock) open until the
            # anonymisation waits for it.
            assert release.wait(WAIT)
        return "saved"

    def anonymise_now():
        with tenant_scope(entity.pk):
            anonymise(customer.pk, confirmation=NUMBER, actor=admin)
        return "anonymised"

    editor_thread = in_thread(edit_and_hold, outcomes, "edit")
    try:
        assert saved.wait(WAIT), outcomes
        anonymiser = in_thread(anonymise_now, outcomes, "anonymise")
        assert blocked_on_a_lock(), "the anonymisation did not wait for the edit's lock"
        assert "anonymise" not in outcomes  # still waiting
    finally:
        release.set()
        editor_thread.join(WAIT)
    anonymiser.join(WAIT)
    assert not editor_thread.is_alive() and not anonymiser.is_alive()

    assert outcomes == {"edit": "saved", "anonymise": "anonymised"}
    row = anonymised_row(customer.pk)
    assert (row["name"], row["email"]) == (ANONYM, "")
    assert row["anonymised_at"] is not None


def test_a_stale_edit_never_writes_anonymised_at_back(world, bodo):
    """Even handed a form built before the anonymisation (as an API would hold one), the
    service refuses, and writes nothing."""
    customer, contact = bodo
    editor = world.users[Role.CREDIT_MANAGER]
    with tenant_scope(world.a):
        form = CustomerForm(
            as_a_browser_posts(customer, name="Back Again AS"),
            instance=Customer.objects.get(pk=customer.pk),
            entity=world.a,
        )
        contact_form = ContactForm(
            contact_as_a_browser_posts(contact, name="Kari Again"),
            instance=ContactPerson.objects.get(pk=contact.pk),
        )
        assert form.is_valid() and contact_form.is_valid()
        anonymise(customer.pk, confirmation=NUMBER, actor=world.users[Role.ADMIN])
        with pytest.raises(AnonymisationRefused, match=MEANWHILE):
            services.save_customer(form, actor=editor, request=None)
        with pytest.raises(AnonymisationRefused, match=MEANWHILE):
            services.save_contact(contact_form, form.instance, actor=editor, request=None)
    row = anonymised_row(customer.pk)
    assert (row["name"], row["email"]) == (ANONYM, "") and row["anonymised_at"] is not None
    assert stored(ContactPerson, contact.pk, "name")["name"] == ANONYM


# --- Only what the user changed ------------------------------------------------------------


def test_untouched_fields_stay_byte_identical_and_the_audit_lists_real_changes(world, client, bodo):
    customer, _ = bodo
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/{customer.pk}/edit/", as_a_browser_posts(customer, name="Bodø Fisk og Vilt AS")
    )
    assert response.status_code == 302

    assert stored(
        Customer, customer.pk, "name", "email", "address", "delivery_address", "notes"
    ) == {
        "name": "Bodø Fisk og Vilt AS",
        "email": IDN_EMAIL,  # not post@xn--bod-2na.example
        "address": "Storgata 1\n8006 Bodø",  # not CRLF
        "delivery_address": "Kaia 2\r\n8006 Bodø",  # as stored, CRLF and all
        "notes": "Fersk fisk\nhver tirsdag",
    }
    event = AuditEvent.objects.get(action="customer.updated")
    assert event.data["fields"] == ["name"]
    history = page_text(client.get(f"/customers/{customer.pk}/history/"))
    assert "fields: name</td>" in history


def test_saving_an_untouched_form_changes_and_audits_no_field(world, client, bodo):
    customer, _ = bodo
    before = stored(Customer, customer.pk, "name", "email", "address", "delivery_address")
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(f"/customers/{customer.pk}/edit/", as_a_browser_posts(customer))
    assert response.status_code == 302
    assert stored(Customer, customer.pk, *before) == before
    assert AuditEvent.objects.get(action="customer.updated").data["fields"] == []


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["CRLF", "LF"])
def test_a_new_address_is_stored_with_lf_newlines(world, client, bodo, newline):
    customer, _ = bodo
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    typed = newline.join(["Havnegata 7", "8006 Bodø", "Norge"])
    response = client.post(
        f"/customers/{customer.pk}/edit/",
        as_a_browser_posts(customer, address=typed, delivery_address=typed),
    )
    assert response.status_code == 302
    expected = "Havnegata 7\n8006 Bodø\nNorge"
    row = stored(Customer, customer.pk, "address", "delivery_address")
    assert row == {"address": expected, "delivery_address": expected}
    assert AuditEvent.objects.get(action="customer.updated").data["fields"] == [
        "address",
        "delivery_address",
    ]
    # A new customer too.
    response = client.post(
        "/customers/new/", {"number": "B-101", "name": "Ny AS", "address": typed, "phone": ""}
    )
    assert response.status_code == 302
    with system_code():
        assert Customer.objects.get(number="B-101").address == expected


def test_a_real_email_change_is_saved_and_audited(world, client, bodo):
    customer, _ = bodo
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/{customer.pk}/edit/",
        as_a_browser_posts(customer, email="kontor@xn--bod-2na.example"),
    )
    assert response.status_code == 302
    assert stored(Customer, customer.pk, "email")["email"] == "kontor@xn--bod-2na.example"
    assert AuditEvent.objects.get(action="customer.updated").data["fields"] == ["email"]


def test_an_untouched_contact_email_stays_and_keeps_its_links(world, client, bodo):
    customer, contact = bodo
    with system_code():
        link, _ = create_link(customer=customer, kind=CustomerLink.Kind.CONSENT, contact=contact)
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/contacts/{contact.pk}/edit/",
        contact_as_a_browser_posts(contact, title="Styreleder"),
        follow=True,
    )
    assert response.status_code == 200
    content = page_text(response)
    assert "The contact was saved." in content
    assert "link(s) sent to the old one" not in content

    assert stored(ContactPerson, contact.pk, "title", "email", "notes") == {
        "title": "Styreleder",
        "email": "kari@bodø.example",
        "notes": "Ring før kl. 10\nikke fredag",
    }
    with system_code():
        assert CustomerLink.objects.get(pk=link.pk).revoked_at is None
    event = AuditEvent.objects.get(action="customer.contact.updated")
    assert event.data["fields"] == ["title"]
    assert event.data["links_withdrawn"] == 0


def test_a_new_contact_note_is_stored_with_lf_newlines(world, client, bodo):
    customer, contact = bodo
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/contacts/{contact.pk}/edit/",
        contact_as_a_browser_posts(contact, notes="Ny leder\r\nfra mars"),
    )
    assert response.status_code == 302
    assert stored(ContactPerson, contact.pk, "notes", "email") == {
        "notes": "Ny leder\nfra mars",
        "email": "kari@bodø.example",
    }
    assert AuditEvent.objects.get(action="customer.contact.updated").data["fields"] == ["notes"]


def test_a_csv_import_stores_lf_newlines_and_sees_no_change_in_them(world, bodo):
    customer, _ = bodo
    admin = world.users[Role.ADMIN]
    data = (
        "customer_number,name,address\r\n"
        'B-200,Nordlandsbåt AS,"Sjøgata 3\r\n8006 Bodø"\r\n'
        f'{NUMBER},{NAME},"Storgata 1\r\n8006 Bodø"\r\n'
    ).encode()
    parsed = csv_import.read_csv(data)
    assert not parsed.problems
    with tenant_scope(world.a):
        plan = csv_import.preview(parsed.rows, world.a)
        # Bodø Fisk's address differs only in its newlines: not a change.
        assert [row.codes for row in plan.rows] == [[csv_import.CREATE], [csv_import.UNCHANGED]]
        services.import_customers(
            parsed.rows,
            world.a,
            expected=plan.signature(),
            scope=None,
            actor=admin,
            request=None,
        )
        assert Customer.objects.get(number="B-200").address == "Sjøgata 3\n8006 Bodø"
        assert Customer.objects.get(number=NUMBER).address == "Storgata 1\n8006 Bodø"
        # The same file again changes nothing.
        again = csv_import.preview(parsed.rows, world.a)
        assert [row.codes for row in again.rows] == [
            [csv_import.UNCHANGED],
            [csv_import.UNCHANGED],
        ]


@postgresql_only
def test_a_new_secret_begun_before_an_anonymisation_is_refused(world, racing, client, monkeypatch):
    customer, _ = racing
    admin, editor = world.users[Role.ADMIN], world.users[Role.CREDIT_MANAGER]
    with system_code():
        legal = AccessGroup.objects.create(entity=world.a, name="Legal")
        legal.members.add(editor)
    anonymise_once_valid(monkeypatch, SecretForm, customer, world.a, admin)
    work_in(client, editor, world.a)
    response = client.post(
        f"/customers/{customer.pk}/secrets/",
        {"title": "Bank details", "body": "IBAN NO93 8601 1117 947", "groups": [legal.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert MEANWHILE in page_text(response)
    with system_code():
        assert not Secret.objects.filter(customer=customer).exists()
