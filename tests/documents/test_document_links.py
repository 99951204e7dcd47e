"""Customer links from the staff side: the Documents tab lists them with status and uses
(reading the link settings once, however many links), emails a document link (only to a
contact who consents, and no invoice PDFs when nothing is open), withdraws a link, shows
its access log; a contact's new email address withdraws the links sent to the old one."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import time_machine
from django.core import mail
from django.db import connection
from django.db.models import F
from django.test import Client

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import CustomerLink, Invoice
from documents.models import OutgoingEmail
from tests.conftest import work_in
from tests.helpers import (
    NOW,
    PDF,
    URL_RE,
    add_document,
    audit,
    body_of,
    dead_message,
    fresh,
    grant_email_consent,
    make_link,
    revoke,
    set_days,
    url,
)

# --- The staff Documents tab -----------------------------------------------------------------


def row_texts(html):
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]


def test_the_documents_tab_lists_links_with_status_and_uses(client, book):
    document = add_document(book.customer, name="contract.pdf")
    with time_machine.travel(NOW - timedelta(days=200), tick=False):
        make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open2)
    _, pdf_token = make_link(
        book.customer,
        CustomerLink.Kind.INVOICE_PDF,
        contact=book.kari,
        invoice=book.open1,
        max_uses=3,
    )
    withdrawn, _ = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)
    revoke(withdrawn)
    used_up, used_token = make_link(
        book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari, max_uses=1
    )
    Client().post(url(pdf_token))
    Client().post(url(used_token, "invoices", book.open1.pk, "pdf"))
    make_link(book.other, CustomerLink.Kind.INTERACTIVE)
    book.editor(client)

    html = client.get(f"/customers/{book.customer.pk}/documents/").content.decode()

    rows = row_texts(html.split("<h2>Links</h2>", 1)[1])
    body = [r for r in rows if not r.startswith("Made")]
    assert len(body) == 4
    assert any("Invoice PDF F-1001 Kari Nordmann 1 / 3 Access log Active" in r for r in body), body
    assert any(
        "Document: contract.pdf — 0 Access log This link was withdrawn." in r for r in body
    ), body
    assert any(
        "Customer page Kari Nordmann 1 / 1 Access log This link has been used as many times" in r
        for r in body
    ), body
    assert any("Invoice PDF F-1002 — 0 Access log This link has expired." in r for r in body), body
    # Another customer's link is not on this card.
    assert "Havbris" not in html


def test_the_documents_tab_does_not_read_settings_once_per_link(client, book):
    from django.test.utils import CaptureQueriesContext

    document = add_document(book.customer)
    set_days(book.entity, document_link_days=5, interactive_link_days=3)
    book.editor(client)
    page = f"/customers/{book.customer.pk}/documents/"

    def queries_with(count):
        with system_code():
            CustomerLink.objects.filter(customer=book.customer).delete()
        for number in range(count):
            kind = CustomerLink.Kind.DOCUMENT if number % 2 else CustomerLink.Kind.INTERACTIVE
            make_link(book.customer, kind, document=document if number % 2 else None)
        client.get(page)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(page)
        assert response.status_code == 200
        return len(captured), response.content.decode().count("Active")

    assert queries_with(2) == (queries_with(12)[0], 2)
    assert queries_with(12)[1] == 12


def test_staff_read_the_access_log_of_a_link(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    Client().get(url(token), REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Mozilla/5.0 Test")
    book.editor(client)

    tab = client.get(f"/customers/{book.customer.pk}/documents/").content.decode()
    assert f'href="/customers/links/{link.pk}/accesses/"' in tab
    page = client.get(f"/customers/links/{link.pk}/accesses/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "198.51.100.7" in content and "Mozilla/5.0 Test" in content
    assert "No (link opened)" in content
    assert "1 access. Opening a link is logged but spends no use" in content
    # Another entity's admin, or someone who cannot see the customer, gets nothing.
    outsider = work_in(Client(), book.world.outsider, book.world.c)
    assert outsider.get(f"/customers/links/{link.pk}/accesses/").status_code == 404


# --- Emailing links --------------------------------------------------------------------------


def test_staff_email_a_document_link(client, book, django_capture_on_commit_callbacks):
    document = add_document(book.customer, name="contract.pdf")
    grant_email_consent(book.kari)
    book.editor(client)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/customers/{book.customer.pk}/documents/",
            {
                "action": "links",
                "what": "document",
                "document": document.pk,
                "contact": book.kari.pk,
                "max_uses": 1,
            },
        )

    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["kari@fjellvik.example"]
    [link_url] = set(URL_RE.findall(message.body))
    with system_code():
        link = CustomerLink.objects.get()
    assert (link.kind, link.document, link.max_uses, link.contact) == (
        "document",
        document,
        1,
        book.kari,
    )
    assert link.created_by == book.world.users[Role.COLLECTOR]
    assert body_of(Client().post(urlsplit(link_url).path)) == PDF
    assert Client().post(urlsplit(link_url).path).status_code == 410

    assert (
        "1 link(s) emailed to kari@fjellvik.example."
        in client.get(response["Location"]).content.decode()
    )


def test_links_are_not_emailed_without_consent(client, book):
    grant_email_consent(book.kari, granted=False)
    document = add_document(book.customer, name="contract.pdf")
    book.editor(client)
    response = client.post(
        f"/customers/{book.customer.pk}/documents/",
        {"action": "links", "what": "document", "document": document.pk, "contact": book.kari.pk},
        follow=True,
    )
    assert "Not sent: Kari Nordmann has not consented to" in response.content.decode()
    assert mail.outbox == []
    with system_code():
        assert not CustomerLink.objects.exists()


def test_no_invoice_pdf_links_are_sent_when_nothing_is_open(client, book):
    with system_code():
        Invoice.objects.filter(customer=book.customer).update(amount_paid=F("amount"))
    book.editor(client)
    response = client.post(
        f"/customers/{book.customer.pk}/documents/",
        {"action": "links", "what": "invoices", "contact": book.kari.pk},
    )
    assert response.status_code == 200
    assert "The customer has no open invoices, so there is nothing to send." in (
        response.content.decode()
    )
    assert mail.outbox == []
    with system_code():
        assert not CustomerLink.objects.exists()
        assert not OutgoingEmail.objects.exists()


# --- Withdrawing links -----------------------------------------------------------------------


def test_staff_withdraw_a_link(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    assert client.get(url(token), follow=True).status_code == 200
    staff = Client()
    book.editor(staff)

    response = staff.post(f"/customers/links/{link.pk}/revoke/")

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{book.customer.pk}/documents/"
    assert fresh(link).revoked_at is not None
    [event] = audit("link.revoked", book.entity)
    assert event.actor == book.world.users[Role.COLLECTOR]
    assert event.data == {"link": link.pk, "kind": "interactive"}
    dead = client.get(url(token), follow=True)
    assert dead.status_code == 410
    assert dead_message(dead) == "This link was withdrawn."
    assert "Fjellvik" not in dead.content.decode()
    # Withdrawing twice is harmless and not audited twice.
    staff.post(f"/customers/links/{link.pk}/revoke/")
    assert len(audit("link.revoked", book.entity)) == 1
    page = staff.get(response["Location"]).content.decode()
    assert "The link was withdrawn." in page
    assert f'action="/customers/links/{link.pk}/revoke/"' not in page


def test_changing_a_contacts_email_withdraws_the_links_sent_to_the_old_one(client, book):
    _, page_token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    with system_code():
        from consent.services import make_link_token

        consent_token = make_link_token(book.kari)
    book.editor(client)
    edit = f"/customers/contacts/{book.kari.pk}/edit/"

    typo = client.post(edit, {"name": "Kari Nordmann-Berg", "email": "not an address"})
    assert typo.status_code == 200
    assert "<h1>Edit Kari Nordmann</h1>" in typo.content.decode()  # not the unsaved name
    assert Client().get(url(page_token), follow=True).status_code == 200

    same = client.post(edit, {"name": "Kari N.", "email": "kari@fjellvik.example"}, follow=True)
    assert "The contact was saved." in same.content.decode()
    assert "link(s) sent to the old one" not in same.content.decode()
    assert Client().get(url(page_token), follow=True).status_code == 200

    moved = client.post(edit, {"name": "Kari N.", "email": "kari@newjob.example"}, follow=True)
    assert "The new email address ends 2 link(s) sent to the old one" in moved.content.decode()
    assert Client().get(url(page_token), follow=True).status_code == 410
    assert Client().get(f"/c/{consent_token}/", follow=True).status_code == 410
