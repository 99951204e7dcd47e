"""GDPR erasure of a customer: the preflight, the refusals (balance, confirmation, already
done), the anonymisation itself (all or nothing), the invoice copy afterwards, and who
may do it. The race with a concurrent invoice is in
tests/consent/test_anonymisation_race.py."""

import re
from datetime import date
from decimal import Decimal

import pytest
from django.db.models.signals import pre_delete

from accounts.models import Membership
from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent import anonymisation
from consent import services as consent_services
from consent.anonymisation import AnonymisationRefused, anonymise
from consent.models import ConsentEvent, ConsentSource, ConsentState
from customers.models import AccessGroup, ContactPerson, Customer, Invoice, Secret
from customers.services import create_invoice
from security.audit import record
from security.models import AuditEvent, AuditEventQuerySet, SecurityPolicy
from tests.conftest import work_in
from tests.helpers import EDITORS, VIEWERS, add_document, make_invoice, pdf_text

NAME = "Fjellvik Transport AS"
NUMBER = "C-100"
PERSONAL = [
    NAME,
    "Fjellvik",
    "912345678",
    "Storgata 1",
    "Alnabru",
    "post@fjellvik.example",
    "+4722334455",
    "Kari Nordmann",
    "kari@fjellvik.example",
    "+4791234567",
    "Ola Hansen",
    "Prefers email",
    "Met at the trade fair",
    "203.0.113.9",
    "Firefox/140",
]


def url(customer):
    return f"/customers/{customer.pk}/anonymise/"


def invoice(customer, number, amount, paid=None, text=""):
    """An invoice of January 2026, paid in full unless `paid` says how much."""
    paid = amount if paid is None else paid
    return make_invoice(
        customer, number, amount, paid, issued=date(2026, 1, 5), due=date(2026, 1, 19), text=text
    )


@pytest.fixture
def rich(world):
    """A zero-balance customer of entity a with everything anonymisation touches, plus
    another customer whose free text mentions it."""
    entity = world.a
    admin = world.users[Role.ADMIN]
    with system_code():
        customer = Customer.objects.create(
            entity=entity,
            number=NUMBER,
            name=NAME,
            organisation_number="912345678",
            address="Storgata 1\n0155 Oslo",
            delivery_address="Lager 2, Alnabru",
            email="post@fjellvik.example",
            phone="+4722334455",
            notes="Key account. Prefers email.",
        )
        kari = ContactPerson.objects.create(
            entity=entity,
            customer=customer,
            name="Kari Nordmann",
            title="CFO",
            email="kari@fjellvik.example",
            phone="+4791234567",
            notes="Met at the trade fair",
        )
        ola = ContactPerson.objects.create(entity=entity, customer=customer, name="Ola Hansen")
        group = AccessGroup.objects.create(entity=entity, name="Legal")
        group.members.set(Membership.objects.filter(entity=entity).values_list("user", flat=True))
        secret = Secret(entity=entity, customer=customer, title="Payment plan", created_by=admin)
        secret.set_body("Agreed by phone with Kari")
        secret.save()
        secret.groups.set([group])
        other = Customer.objects.create(
            entity=entity, number="C-200", name="Havbris AS", notes="Referred by Kari Nordmann."
        )
        ContactPerson.objects.create(
            entity=entity,
            customer=other,
            name="Per Olsen",
            notes="Used to work at Fjellvik Transport AS",
        )
    invoice(customer, "F-1001", "1000.00")
    invoice(customer, "F-1002", "480.50", text="Freight Oslo-Bergen")
    invoice(other, "F-2001", "300.00", paid="0", text="Re-invoiced for Fjellvik Transport AS")
    with tenant_scope(entity):
        names = {p.name: p for p in consent_services.purposes_for(entity)}
        consent_services.set_consents(
            kari,
            {names["Newsletter"]: True, names["Reminders by SMS"]: False},
            source=ConsentSource.SELF_SERVICE,
            ip="203.0.113.9",
            user_agent="Mozilla/5.0 Firefox/140",
            policy_version="v1",
        )
        consent_services.set_consents(
            ola, {names["Phone calls"]: True}, source=ConsentSource.STAFF, actor=admin
        )
    record(
        "customer.updated",
        actor=admin,
        entity=entity,
        target=customer,
        data={"fields": ["name"], "note": f"was {NAME} (Kari Nordmann)"},
    )
    record(
        "secret.revealed",
        actor=admin,
        entity=entity,
        target=customer,
        data={"secret": secret.pk, "title": "Payment plan"},
    )
    return customer


def snapshot(customer):
    """Everything anonymisation could change, for "nothing changed" checks."""
    with system_code():
        return {
            "customer": Customer.objects.filter(pk=customer.pk).values().get(),
            "contacts": list(
                ContactPerson.objects.filter(customer=customer).order_by("pk").values()
            ),
            "consent_events": list(
                ConsentEvent.objects.filter(contact__customer=customer).order_by("pk").values()
            ),
            "consent_states": list(
                ConsentState.objects.filter(contact__customer=customer).order_by("pk").values()
            ),
            "secrets": list(Secret.objects.filter(customer=customer).order_by("pk").values()),
            "secret_groups": list(
                Secret.groups.through.objects.filter(secret__customer=customer)
                .order_by("pk")
                .values()
            ),
            "invoices": list(Invoice.objects.filter(customer=customer).order_by("pk").values()),
            "audit": list(AuditEvent.objects.order_by("pk").values()),
        }


def customer_fields(content):
    block = re.search(r'<dl class="facts" data-testid="customer-fields">(.*?)</dl>', content, re.S)
    assert block, "no customer fields"
    return dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block.group(1), re.S))


# --- Preflight -------------------------------------------------------------------------------


def test_the_preflight_lists_what_will_happen_and_where_to_look(world, client, rich):
    page = work_in(client, world.users[Role.CREDIT_MANAGER], world.a).get(url(rich))

    assert page.status_code == 200
    content = page.content.decode()
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", content, re.S))
    assert facts["Ledger balance"] == "0.00"
    assert facts["Contact persons"] == "2"
    assert facts["Secrets to delete"] == "1"
    assert "“Fjellvik Transport AS”, “Kari Nordmann”, “Ola Hansen”" in content
    mentions = re.findall(r'<li><a href="([^"]+)">(.*?)</a></li>', content)
    with system_code():
        other = Customer.objects.get(number="C-200")
    assert (f"/customers/{other.pk}/", "Notes of customer C-200 Havbris AS") in mentions
    assert (
        f"/customers/{other.pk}/contacts/",
        "Notes of contact Per Olsen (C-200 Havbris AS)",
    ) in mentions
    assert (
        f"/customers/{other.pk}/invoices/",
        "Text of invoice F-2001 (C-200 Havbris AS)",
    ) in mentions
    assert "Anonymise for good" in content
    assert 'name="confirm_number"' in content
    # Looking changes nothing.
    assert snapshot(rich)["customer"]["name"] == NAME


def test_the_preflight_says_when_nothing_else_mentions_the_names(world, client):
    with system_code():
        lone = Customer.objects.create(entity=world.a, number="C-7", name="Ensom Handel AS")
    content = work_in(client, world.users[Role.ADMIN], world.a).get(url(lone)).content.decode()
    assert "No other text you can see mentions these names." in content


def test_the_preflight_names_no_customer_the_user_may_not_see(world, client):
    collector = world.users[Role.COLLECTOR]
    SecurityPolicy.objects.create(entity=world.a, restricted_roles=["collector"])
    with system_code():
        mine = Customer.objects.create(entity=world.a, number="C-1", name=NAME, collector=collector)
        hidden = Customer.objects.create(
            entity=world.a, number="C-900", name="Skjult Eiendom AS", notes=f"Owes {NAME}"
        )
    work_in(client, collector, world.a)
    assert client.get(f"/customers/{hidden.pk}/").status_code == 404  # hidden from them

    content = client.get(url(mine)).content.decode()

    assert "Skjult Eiendom AS" not in content
    assert "C-900" not in content


# --- Refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "paid", "shown", "message"),
    [
        ("1250.50", "0", "1,250.50", "1250.50"),
        ("100.00", "150.00", "-50.00", "-50.00"),
    ],
    ids=["owes", "in-credit"],
)
def test_a_customer_with_a_balance_is_refused(world, client, rich, amount, paid, shown, message):
    invoice(rich, "F-1003", amount, paid=paid)
    work_in(client, world.users[Role.ADMIN], world.a)

    preflight = client.get(url(rich)).content.decode()
    assert f"<dd>{shown} — must be zero first</dd>" in preflight
    assert f"outstanding balance of {shown}. It can be anonymised when" in preflight
    assert "Anonymise for good" not in preflight
    before = snapshot(rich)

    refused = client.post(url(rich), {"confirm_number": NUMBER})

    assert refused.status_code == 200
    content = refused.content.decode()
    assert (
        f"The customer has an outstanding balance of {message}. The balance must be zero "
        "before the customer can be anonymised; nothing was changed."
    ) in content
    assert snapshot(rich) == before


@pytest.mark.parametrize("typed", ["C-200", "", "c-100", "C-10", "100"])
def test_a_wrong_confirmation_number_is_refused(world, client, rich, typed):
    work_in(client, world.users[Role.ADMIN], world.a)
    before = snapshot(rich)

    page = client.post(url(rich), {"confirm_number": typed})

    assert page.status_code == 200
    assert "Type the customer number exactly to confirm; nothing was changed." in (
        page.content.decode()
    )
    assert snapshot(rich) == before


# --- Anonymisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", EDITORS)
def test_an_editor_anonymises_a_zero_balance_customer(world, client, rich, role):
    user = world.users[role]
    work_in(client, user, world.a)
    before = snapshot(rich)
    secret_pk = before["secrets"][0]["id"]
    audit_before = {e["id"] for e in before["audit"]}

    response = client.post(url(rich), {"confirm_number": f" {NUMBER} "})

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{rich.pk}/"
    card = client.get(response["Location"]).content.decode()
    assert "The customer was anonymised. This cannot be undone." in card
    after = snapshot(rich)

    customer = after["customer"]
    assert customer["name"] == "Anonym"
    for blank in ["organisation_number", "address", "delivery_address", "email", "phone", "notes"]:
        assert customer[blank] == "", blank
    assert customer["anonymised_at"] is not None
    assert customer["number"] == NUMBER  # the record stays
    assert len(after["contacts"]) == 2
    for contact in after["contacts"]:
        assert contact["name"] == "Anonym"
        assert [contact[f] for f in ["title", "email", "phone", "notes"]] == ["", "", "", ""]

    # The consent ledger keeps its rows and what was decided, but no IP or user agent.
    assert len(after["consent_events"]) == len(before["consent_events"]) == 3
    for old, new in zip(before["consent_events"], after["consent_events"], strict=True):
        assert (new["ip"], new["user_agent"]) == (None, "")
        unchanged = {k: v for k, v in old.items() if k not in {"ip", "user_agent"}}
        assert {k: new[k] for k in unchanged} == unchanged
    assert after["consent_states"] == before["consent_states"]

    assert after["secrets"] == [] and after["secret_groups"] == []
    with system_code():
        assert not Secret.objects.filter(pk=secret_pk).exists()
    assert after["invoices"] == before["invoices"]

    new_events = [e for e in after["audit"] if e["id"] not in audit_before]
    assert [e["action"] for e in new_events] == ["customer.anonymised"]
    done = new_events[0]
    assert (done["actor_id"], done["entity_id"]) == (user.pk, world.a.pk)
    assert (done["target_type"], done["target_id"]) == ("customers.customer", str(rich.pk))
    assert done["target_label"] == "Anonym"
    assert done["data"]["contacts"] == 2 and done["data"]["secrets_deleted"] == 1
    earlier = [e for e in after["audit"] if e["id"] in audit_before]
    about_customer = [e for e in earlier if e["target_id"] == str(rich.pk)]
    assert {e["action"] for e in about_customer} == {"customer.updated", "secret.revealed"}
    for event in about_customer:
        assert (event["target_label"], event["data"]) == ("Anonym", {})
        # Who did what, and when, stays.
        original = next(e for e in before["audit"] if e["id"] == event["id"])
        for kept in ["action", "actor_id", "actor_label", "created_at", "entity_id", "ip"]:
            assert event[kept] == original[kept]
    # No erased datum is left anywhere in the audit log.
    for event in after["audit"]:
        text = f"{event['target_label']} {event['data']}"
        for datum in PERSONAL:
            assert datum not in text, (event["action"], datum)

    # The other customer's text is not touched (it is for manual review).
    with system_code():
        other = Customer.objects.get(number="C-200")
    assert other.notes == "Referred by Kari Nordmann."


def test_the_invoice_copy_shows_anonym_in_every_customer_field(world, client, rich):
    with system_code():
        item = Invoice.objects.get(number="F-1002")
    work_in(client, world.users[Role.GUEST], world.a)
    before = customer_fields(client.get(f"/customers/invoices/{item.pk}/copy/").content.decode())
    assert before["Customer"] == NAME and before["Email"] == "post@fjellvik.example"
    with tenant_scope(world.a):
        anonymise(rich.pk, confirmation=NUMBER, actor=world.users[Role.ADMIN])

    page = client.get(f"/customers/invoices/{item.pk}/copy/")

    assert page.status_code == 200
    content = page.content.decode()
    fields = customer_fields(content)
    assert list(fields) == [
        "Customer",
        "Customer number",
        "Organisation number",
        "Address",
        "Email",
        "Phone",
    ]
    assert fields.pop("Customer number") == NUMBER
    assert set(fields.values()) == {"Anonym"}
    assert "480.50" in content and "Freight Oslo-Bergen" in content
    for datum in PERSONAL:
        assert datum not in content

    pdf = client.get(f"/customers/invoices/{item.pk}/copy/?format=pdf")

    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    text = pdf_text(pdf.content)
    lines = text.splitlines()
    # After the "Customer" heading: label, value, label, value...
    block = lines[lines.index("Customer") + 1 :][:12]
    assert dict(zip(block[::2], block[1::2], strict=True)) == {
        "Customer": "Anonym",
        "Customer number": NUMBER,
        "Organisation number": "Anonym",
        "Address": "Anonym",
        "Email": "Anonym",
        "Phone": "Anonym",
    }
    assert "480.50 NOK" in text
    for datum in PERSONAL:
        assert datum not in text


def test_anonymisation_is_irreversible(world, client, rich):
    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.post(url(rich), {"confirm_number": NUMBER}).status_code == 302
    before = snapshot(rich)

    again = client.post(url(rich), {"confirm_number": NUMBER})

    assert again.status_code == 200
    assert "This customer is already anonymised." in again.content.decode()
    assert snapshot(rich) == before
    assert AuditEvent.objects.filter(action="customer.anonymised").count() == 1
    # Nothing offers to undo it: the customer form has no way back.
    with system_code():
        assert Customer.objects.get(pk=rich.pk).name == "Anonym"


def test_what_the_customer_wrote_and_was_sent_is_erased_too(world, client, rich):

    from documents.models import Document, InvoiceAction, OutgoingEmail

    entity = world.a
    with system_code():
        kari = ContactPerson.objects.get(customer=rich, name="Kari Nordmann")
        first = Invoice.objects.get(customer=rich, number="F-1001")
        InvoiceAction.objects.create(
            entity=entity,
            invoice=first,
            kind=InvoiceAction.Kind.DISPUTE,
            comment="Call Kari Nordmann on +47 99887766",
        )
        common = {"entity": entity, "customer": rich, "contact": kari, "to": kari.email}
        sent = OutgoingEmail.objects.create(
            **common,
            subject="Reminder for Fjellvik",
            text_body="Hello Kari Nordmann",
            html_body="<p>Hello Kari Nordmann</p>",
            status=OutgoingEmail.Status.SENT,
        )
        queued = OutgoingEmail.objects.create(
            **common, subject="Documents", text_body="Hello Kari", html_body="<p>Hi</p>"
        )
        pdf = add_document(
            rich, kind=Document.Kind.INVOICE, name="Faktura Kari Nordmann privat.pdf"
        )
        Document.objects.filter(pk=pdf.pk).update(invoice=first)
        loose = add_document(rich, kind=Document.Kind.INVOICE, name="Kari Nordmann credit note.pdf")
    disputed = record("invoice.disputed", entity=entity, target=rich, ip="198.51.100.77")
    by_staff = record(
        "customer.updated", actor=world.users[Role.ADMIN], entity=entity, target=rich, ip="10.0.0.5"
    )

    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.post(url(rich), {"confirm_number": NUMBER}).status_code == 302

    with system_code():
        assert InvoiceAction.objects.get(invoice=first).comment == ""
        for email in OutgoingEmail.objects.filter(customer=rich):
            assert (email.to, email.subject, email.text_body, email.html_body) == (
                "",
                "Anonym",
                "",
                "",
            )
        assert OutgoingEmail.objects.get(pk=sent.pk).status == OutgoingEmail.Status.SENT
        assert OutgoingEmail.objects.get(pk=queued.pk).status == OutgoingEmail.Status.SKIPPED
        kept = Document.objects.get(pk=pdf.pk)
        assert kept.original_name == "invoice-F-1001.pdf"
        assert Document.objects.get(pk=loose.pk).original_name == f"invoice-{loose.pk}.pdf"
        assert kept.file.read().startswith(b"%PDF")  # the invoice itself is kept
    assert AuditEvent.objects.get(pk=disputed.pk).ip is None  # the customer's address
    assert AuditEvent.objects.get(pk=by_staff.pk).ip == "10.0.0.5"  # the staff member's
    for tab in ("documents", "invoices"):
        page = client.get(f"/customers/{rich.pk}/{tab}/").content.decode()
        for erased in ("Kari", "99887766", "fjellvik.example", "privat.pdf"):
            assert erased not in page, (tab, erased)


def test_an_anonymised_customer_cannot_be_filled_in_or_sent_anything(world, client, rich):
    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.post(url(rich), {"confirm_number": NUMBER}).status_code == 302
    with system_code():
        contact = ContactPerson.objects.filter(customer=rich).first()
    before = snapshot(rich)
    card = client.get(f"/customers/{rich.pk}/").content.decode()
    assert "Anonymised on" in card
    assert "Edit customer" not in card and ">Anonymise<" not in card

    attempts = [
        ("get", f"/customers/{rich.pk}/edit/", {}),
        ("post", f"/customers/{rich.pk}/edit/", {"number": NUMBER, "name": "Fjellvik again"}),
        ("get", f"/customers/{rich.pk}/contacts/new/", {}),
        ("post", f"/customers/{rich.pk}/contacts/new/", {"name": "Kari", "email": "k@x.example"}),
        ("post", f"/customers/contacts/{contact.pk}/edit/", {"name": "Kari Nordmann"}),
        ("post", f"/customers/{rich.pk}/secrets/", {"title": "New", "body": "Kari's plan"}),
        ("post", f"/customers/{rich.pk}/documents/", {"action": "send", "what": "interactive"}),
        ("post", f"/customers/{rich.pk}/reminder/", {"contact": contact.pk}),
    ]
    for method, path, data in attempts:
        response = getattr(client, method)(path, data, follow=True)
        assert response.redirect_chain[-1][0] == f"/customers/{rich.pk}/", path
        assert "This customer is anonymised" in response.content.decode(), path
    assert snapshot(rich) == before
    # Looking stays possible; the tab offers nothing to upload or send.
    for tab in ("contacts", "invoices", "documents", "secrets", "history"):
        assert client.get(f"/customers/{rich.pk}/{tab}/").status_code == 200, tab
    documents = client.get(f"/customers/{rich.pk}/documents/").content.decode()
    assert "<h3>Upload</h3>" not in documents and "Send to a contact" not in documents
    again = client.get(url(rich), follow=True)
    assert "This customer is already anonymised." in again.content.decode()


def test_an_anonymised_customer_gets_no_new_invoices(world, rich):
    with tenant_scope(world.a):
        anonymise(rich.pk, confirmation=NUMBER, actor=None)
        with pytest.raises(AnonymisationRefused, match="cannot get new invoices"):
            create_invoice(
                rich.pk,
                number="F-9",
                issued_on=date(2026, 3, 1),
                due_on=date(2026, 3, 15),
                amount=Decimal("10"),
            )
    with system_code():
        assert not Invoice.objects.filter(number="F-9").exists()


# --- All or nothing --------------------------------------------------------------------------


class Injected(Exception):
    pass


def fail(*args, **kwargs):
    raise Injected("injected failure")


@pytest.fixture(params=["secret-deletion", "audit-erasure", "audit-record", "consent-erasure"])
def failure(request, monkeypatch):
    """Make one step of the anonymisation raise."""
    if request.param == "secret-deletion":
        pre_delete.connect(fail, sender=Secret, dispatch_uid="test-fail-secret")
        yield request.param
        pre_delete.disconnect(sender=Secret, dispatch_uid="test-fail-secret")
        return
    if request.param == "audit-erasure":
        monkeypatch.setattr(AuditEventQuerySet, "erase_personal_data", fail)
    elif request.param == "audit-record":
        monkeypatch.setattr(anonymisation, "record", fail)
    else:
        real_filter = ConsentEvent.objects.filter

        def filter_then_fail(*args, **kwargs):
            queryset = real_filter(*args, **kwargs)
            monkeypatch.setattr(queryset, "update", fail)
            return queryset

        monkeypatch.setattr(ConsentEvent.objects, "filter", filter_then_fail)
    yield request.param


def test_a_failure_midway_changes_nothing(world, client, rich, failure):
    work_in(client, world.users[Role.ADMIN], world.a)
    before = snapshot(rich)

    with pytest.raises(Injected):
        client.post(url(rich), {"confirm_number": NUMBER})

    assert snapshot(rich) == before


# --- Who may do it ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", VIEWERS)
def test_roles_without_edit_rights_get_403(world, client, rich, role):
    work_in(client, world.users[role], world.a)
    before = snapshot(rich)
    assert client.get(url(rich)).status_code == 403
    assert client.post(url(rich), {"confirm_number": NUMBER}).status_code == 403
    assert snapshot(rich) == before
    # The card offers no Anonymise entry either.
    assert "/anonymise/" not in client.get(f"/customers/{rich.pk}/").content.decode()


def test_another_entitys_customer_is_not_found(world, client):
    with system_code():
        theirs = Customer.objects.create(entity=world.b, number=NUMBER, name="Svensk Kund AB")
    item = invoice(theirs, "S-1", "100.00", paid="0")
    work_in(client, world.users[Role.ADMIN], world.a)
    assert client.get(url(theirs)).status_code == 404
    assert client.post(url(theirs), {"confirm_number": NUMBER}).status_code == 404
    assert client.get(f"/customers/invoices/{item.pk}/copy/").status_code == 404
    assert client.get(f"/customers/invoices/{item.pk}/copy/?format=pdf").status_code == 404
    with system_code():
        assert Customer.objects.get(pk=theirs.pk).anonymised_at is None


def test_a_customer_hidden_by_the_role_restriction_is_not_found(world, client):
    collector = world.users[Role.COLLECTOR]
    SecurityPolicy.objects.create(entity=world.a, restricted_roles=["collector"])
    with system_code():
        hidden = Customer.objects.create(entity=world.a, number="C-1", name="Skjult AS")
        mine = Customer.objects.create(
            entity=world.a, number="C-2", name="Min Kunde AS", collector=collector
        )
    item = invoice(hidden, "F-1", "100.00")
    work_in(client, collector, world.a)
    assert client.get(url(hidden)).status_code == 404
    assert client.post(url(hidden), {"confirm_number": "C-1"}).status_code == 404
    assert client.get(f"/customers/invoices/{item.pk}/copy/").status_code == 404
    assert client.get(url(mine)).status_code == 200  # the positive control
    with system_code():
        assert Customer.objects.get(pk=hidden.pk).anonymised_at is None
