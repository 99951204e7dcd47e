"""Hosted documents and customer links: uploads checked by content, deletion, the staff
Documents tab, links (download, headers, expiry from the entity's settings at use,
revocation, max uses, tampering, hashed tokens, use log, renewal by email), the
interactive customer page (promise to pay, dispute, per-invoice PDF) and what
anonymisation does to documents and links."""

import hashlib
import re
import threading
import zlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone

from accounts.roles import Role
from accounts.tenancy import system_code
from consent.anonymisation import anonymise
from customers import links
from customers.models import ContactPerson, Customer, CustomerLink, Invoice, LinkUse
from documents import links as document_links
from documents.models import Document, InvoiceAction, OutgoingEmail
from security.models import AuditEvent, SecurityPolicy
from tests.conftest import work_in

EDITORS = [Role.MAIN_ADMIN, Role.ADMIN, Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES_ADMIN]
VIEWERS = [Role.SALES, Role.GUEST]
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
NASTY_NAME = '../../x"; rm -rf.pdf'
NOT_PDF = "An invoice must be a PDF file (this file&#x27;s content is not PDF)."
NOT_ANY = "Upload a PDF, PNG or JPEG file (this file&#x27;s content is none of them)."
URL_RE = re.compile(r"https?://[^\s\"<>]+/l/[A-Za-z0-9_-]+/")


# --- Helpers and fixtures --------------------------------------------------------------------


def make_invoice(customer, number, amount, paid="0"):
    with system_code():
        return Invoice.objects.create(
            entity=customer.entity,
            customer=customer,
            number=number,
            issued_on=date(2026, 5, 1),
            due_on=date(2026, 5, 15),
            amount=Decimal(amount),
            amount_paid=Decimal(paid),
        )


class Book:
    """Entity a's customer with a contact, two open invoices and a paid one; a second
    customer of the same entity; a customer of entity c."""

    def __init__(self, world):
        self.world = world
        self.entity = world.a
        with system_code():
            self.customer = Customer.objects.create(
                entity=world.a,
                number="C-1",
                name="Fjellvik Transport AS",
                collector=world.users[Role.COLLECTOR],
            )
            self.kari = ContactPerson.objects.create(
                entity=world.a,
                customer=self.customer,
                name="Kari Nordmann",
                email="kari@fjellvik.example",
            )
            self.other = Customer.objects.create(entity=world.a, number="C-2", name="Havbris AS")
            self.stranger = Customer.objects.create(
                entity=world.c, number="C-1", name="Fremmed Firma AS"
            )
        self.open1 = make_invoice(self.customer, "F-1001", "1000.00")
        self.open2 = make_invoice(self.customer, "F-1002", "480.50", paid="80.50")
        self.paid = make_invoice(self.customer, "F-1000", "200.00", paid="200.00")
        self.others_invoice = make_invoice(self.other, "F-2001", "300.00")
        self.strangers_invoice = make_invoice(self.stranger, "F-9001", "900.00")
        # Kari takes invoices by email, as a contact who is sent links does.
        grant_email_consent(self.kari)

    def editor(self, client, role=Role.COLLECTOR):
        return work_in(client, self.world.users[role], self.entity)


@pytest.fixture
def book(world):
    return Book(world)


def add_document(customer, content=PDF, *, kind=Document.Kind.SUPPORTING, name="contract.pdf"):
    content_type = "application/pdf" if content.startswith(b"%PDF") else "image/png"
    with system_code():
        document = Document(
            entity=customer.entity,
            customer=customer,
            kind=kind,
            original_name=name,
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        document.file.save("doc", ContentFile(content), save=False)
        document.save()
    return document


def make_link(customer, kind, **fields):
    with system_code():
        return links.create_link(customer=customer, kind=kind, **fields)


def revoke(link):
    with system_code():
        links.revoke(link, actor=None)


def erase(book):
    with system_code():
        return anonymise(book.customer.pk, confirmation="C-1", actor=book.world.users[Role.ADMIN])


def fresh(obj):
    with system_code():
        return type(obj).objects.get(pk=obj.pk)


def url(token, *rest):
    return "/l/" + token + "/" + "".join(f"{part}/" for part in rest)


def body_of(response):
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def assert_private(response):
    for header, value in PRIVATE_HEADERS.items():
        assert response.headers.get(header) == value, (header, response.status_code)


def audit(action, entity):
    return list(AuditEvent.objects.filter(action=action, entity=entity).order_by("pk"))


def uses_of(link):
    with system_code():
        return list(LinkUse.objects.filter(link=link).order_by("pk"))


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


def upload(client, customer, filename, content, kind="invoice", **extra):
    data = {"action": "upload", "kind": kind, "file": SimpleUploadedFile(filename, content)}
    data.update(extra)
    return client.post(f"/customers/{customer.pk}/documents/", data)


def settle(customer):
    """Pay every invoice of `customer` (anonymisation needs a zero balance)."""
    with system_code():
        for invoice in Invoice.objects.filter(customer=customer):
            Invoice.objects.filter(pk=invoice.pk).update(amount_paid=invoice.amount)


def set_days(entity, **days):
    SecurityPolicy.objects.update_or_create(entity=entity, defaults=days)


def dead_message(response):
    return re.search(r"<h1>(.*?)</h1>", response.content.decode()).group(1)


# --- Uploads ---------------------------------------------------------------------------------


def test_a_pdf_invoice_is_stored_with_its_checksum_and_audited(client, book):
    book.editor(client)

    response = upload(client, book.customer, "Faktura F-1001.pdf", PDF, invoice=book.open1.pk)

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{book.customer.pk}/documents/"
    with system_code():
        document = Document.objects.get(customer=book.customer)
    assert document.kind == Document.Kind.INVOICE
    assert document.invoice_id == book.open1.pk
    assert document.original_name == "Faktura F-1001.pdf"
    assert document.content_type == "application/pdf"
    assert document.size == len(PDF)
    assert document.sha256 == hashlib.sha256(PDF).hexdigest()
    assert document.uploaded_by == book.world.users[Role.COLLECTOR]
    # The bytes live in the storage, not in the database, under a name of our choosing.
    assert default_storage.exists(document.file.name)
    with default_storage.open(document.file.name) as stored:
        assert stored.read() == PDF
    assert "Faktura" not in document.file.name
    [event] = audit("document.uploaded", book.entity)
    assert event.actor == book.world.users[Role.COLLECTOR]
    assert event.target_id == str(book.customer.pk)
    assert event.data == {
        "document": document.pk,
        "kind": "invoice",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
    }
    page = client.get(response["Location"])
    assert "The document was uploaded." in page.content.decode()
    assert "Faktura F-1001.pdf" in page.content.decode()


@pytest.mark.parametrize(
    ("filename", "content"),
    [("invoice.pdf", PNG), ("invoice.pdf", b"Just some text, renamed to .pdf\n")],
    ids=["png-named-pdf", "text-named-pdf"],
)
def test_an_invoice_that_is_not_a_pdf_inside_is_refused(client, book, filename, content):
    book.editor(client)

    response = upload(client, book.customer, filename, content)

    assert response.status_code == 200
    assert NOT_PDF in response.content.decode()
    with system_code():
        assert not Document.objects.exists()
    assert audit("document.uploaded", book.entity) == []


def test_a_supporting_text_file_is_refused_by_content(client, book):
    book.editor(client)

    response = upload(client, book.customer, "photo.png", b"hello", kind="supporting")

    assert response.status_code == 200
    assert NOT_ANY in response.content.decode()
    with system_code():
        assert not Document.objects.exists()


def test_more_than_10_mb_is_refused_and_10_mb_is_accepted(client, book):
    book.editor(client)
    limit = 10 * 1024 * 1024

    too_big = upload(client, book.customer, "big.pdf", PDF + b"0" * (limit + 1 - len(PDF)))

    assert too_big.status_code == 200
    assert "the limit is 10 MB." in too_big.content.decode()
    with system_code():
        assert not Document.objects.exists()

    just_fits = upload(client, book.customer, "fits.pdf", PDF + b"0" * (limit - len(PDF)))

    assert just_fits.status_code == 302
    with system_code():
        assert Document.objects.get().size == limit


@pytest.mark.parametrize(
    ("filename", "content", "content_type"),
    [("scan.png", PNG, "image/png"), ("photo.jpg", JPEG, "image/jpeg"), ("x.pdf", PDF, None)],
    ids=["png", "jpeg", "pdf"],
)
def test_supporting_documents_may_be_png_jpeg_or_pdf(client, book, filename, content, content_type):
    book.editor(client)

    response = upload(client, book.customer, filename, content, kind="supporting")

    assert response.status_code == 302
    with system_code():
        document = Document.objects.get()
    assert document.kind == Document.Kind.SUPPORTING
    assert document.content_type == (content_type or "application/pdf")
    assert document.sha256 == hashlib.sha256(content).hexdigest()


def test_an_upload_cannot_name_another_customers_invoice(client, book):
    book.editor(client)

    response = upload(client, book.customer, "f.pdf", PDF, invoice=book.others_invoice.pk)

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    with system_code():
        assert not Document.objects.exists()


# --- Deleting and who may change documents ---------------------------------------------------


def test_deleting_a_document_is_audited_removes_the_file_and_kills_its_links(
    client, book, django_capture_on_commit_callbacks
):
    document = add_document(book.customer)
    name = document.file.name
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=document
    )
    assert client.get(url(token)).status_code == 200
    book.editor(client, Role.CREDIT_MANAGER)

    # The first press asks; nothing is deleted yet.
    ask = client.post(f"/customers/documents/{document.pk}/delete/")
    assert ask.status_code == 200
    assert "<h1>Delete contract.pdf?</h1>" in ask.content.decode()
    assert 'name="confirm" value="yes"' in ask.content.decode()
    with system_code():
        assert Document.objects.filter(pk=document.pk).exists()
    assert Client().get(url(token)).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/customers/documents/{document.pk}/delete/", {"confirm": "yes"})

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{book.customer.pk}/documents/"
    with system_code():
        assert not Document.objects.filter(pk=document.pk).exists()
    assert not default_storage.exists(name)
    [event] = audit("document.deleted", book.entity)
    assert event.actor == book.world.users[Role.CREDIT_MANAGER]
    assert event.target_id == str(book.customer.pk)
    assert event.data["kind"] == "supporting"
    dead = Client().get(url(token))
    assert dead.status_code == 410
    assert_private(dead)
    assert "contract" not in dead.content.decode()


def test_the_deletion_audit_names_the_document(client, book):
    document = add_document(book.customer)
    book.editor(client)

    client.post(f"/customers/documents/{document.pk}/delete/", {"confirm": "yes"})

    [event] = audit("document.deleted", book.entity)
    assert event.data == {"document": document.pk, "kind": "supporting"}


def test_a_deleted_documents_links_stay_on_record_as_withdrawn(client, book):
    document = add_document(book.customer)
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=document
    )
    client.get(url(token), REMOTE_ADDR="203.0.113.5")
    book.editor(client)

    client.post(f"/customers/documents/{document.pk}/delete/", {"confirm": "yes"})

    with system_code():
        kept = CustomerLink.objects.filter(pk=link.pk).first()
    assert kept is not None and kept.revoked_at is not None
    assert len(uses_of(link)) == 1


@pytest.mark.parametrize("role", VIEWERS)
def test_viewers_may_not_upload_delete_send_or_revoke(client, book, role):
    document = add_document(book.customer)
    link, _ = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    book.editor(client, role)

    page = client.get(f"/customers/{book.customer.pk}/documents/")
    assert page.status_code == 200
    assert "contract.pdf" in page.content.decode()
    assert 'name="action" value="upload"' not in page.content.decode()
    assert "Send reminder" not in page.content.decode()

    assert upload(client, book.customer, "f.pdf", PDF).status_code == 403
    sent = client.post(
        f"/customers/{book.customer.pk}/documents/",
        {"action": "links", "what": "interactive", "contact": book.kari.pk},
    )
    assert sent.status_code == 403
    assert (
        client.post(f"/customers/documents/{document.pk}/delete/", {"confirm": "yes"}).status_code
        == 403
    )
    assert client.post(f"/customers/links/{link.pk}/revoke/").status_code == 403
    assert (
        client.post(f"/customers/{book.customer.pk}/reminder/", {"contact": book.kari.pk})
    ).status_code == 403
    with system_code():
        assert Document.objects.count() == 1
        assert CustomerLink.objects.count() == 1
        assert fresh(link).revoked_at is None
        assert not OutgoingEmail.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize("role", EDITORS)
def test_editors_may_upload_and_delete(client, book, role):
    book.editor(client, role)
    assert upload(client, book.customer, "f.pdf", PDF).status_code == 302
    with system_code():
        document = Document.objects.get()
    assert (
        client.post(f"/customers/documents/{document.pk}/delete/", {"confirm": "yes"}).status_code
        == 302
    )
    with system_code():
        assert not Document.objects.exists()


def test_another_entitys_documents_and_links_are_404(client, book):
    theirs = add_document(book.stranger)
    their_link, _ = make_link(book.stranger, CustomerLink.Kind.INTERACTIVE)
    # The main admin reaches entities a and b, never c; the outsider is admin of c only.
    work_in(client, book.world.main_admin, book.world.a)

    assert (
        client.post(f"/customers/documents/{theirs.pk}/delete/", {"confirm": "yes"}).status_code
        == 404
    )
    assert client.post(f"/customers/links/{their_link.pk}/revoke/").status_code == 404
    assert client.get(f"/customers/{book.stranger.pk}/documents/").status_code == 404
    assert upload(client, book.stranger, "f.pdf", PDF).status_code == 404
    with system_code():
        assert Document.objects.filter(pk=theirs.pk).exists()
        assert fresh(their_link).revoked_at is None

    # And the other way round: entity c's admin cannot touch entity a's.
    mine = add_document(book.customer)
    work_in(client, book.world.outsider, book.world.c)
    assert (
        client.post(f"/customers/documents/{mine.pk}/delete/", {"confirm": "yes"}).status_code
        == 404
    )
    assert client.get(f"/customers/{book.customer.pk}/documents/").status_code == 404
    with system_code():
        assert Document.objects.filter(pk=mine.pk).exists()


# --- Document links --------------------------------------------------------------------------


def test_a_document_link_downloads_the_file_under_a_safe_name(client, book):
    document = add_document(book.customer, name=NASTY_NAME)
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=document
    )

    response = client.get(url(token))

    assert response.status_code == 200
    assert_private(response)
    assert response["Content-Type"] == "application/pdf"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    filename = re.fullmatch(r'attachment; filename="([^"]*)"', disposition).group(1)
    assert filename == "x rm -rf.pdf"
    for bad in ["/", "\\", '"', ";", ".."]:
        assert bad not in filename
    assert body_of(response) == PDF


@pytest.mark.parametrize(
    ("original", "expected"),
    [("...", "document.pdf"), ("Faktura nr. 7 (kopi).pdf", "Faktura nr. 7 kopi.pdf")],
)
def test_filenames_are_cleaned(client, book, original, expected):
    document = add_document(book.customer, name=original)
    _, token = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)

    response = client.get(url(token))

    assert response["Content-Disposition"] == f'attachment; filename="{expected}"'


def test_every_link_answer_is_private(client, book):
    document = add_document(book.customer)
    _, doc_token = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)
    _, pdf_token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1)
    _, page_token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    revoked, revoked_token = make_link(
        book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari
    )
    revoke(revoked)

    answers = {
        "file": client.get(url(doc_token)),
        "invoice pdf": client.get(url(pdf_token)),
        "page": client.get(url(page_token)),
        "page pdf": client.get(url(page_token, "invoices", book.open1.pk, "pdf")),
        "invalid page": client.get(url("nonsense")),
        "invalid pdf": client.get(url("nonsense", "invoices", book.open1.pk, "pdf")),
        "withdrawn": client.get(url(revoked_token)),
        "renew refused": client.post(url("nonsense", "renew")),
    }

    assert {k: r.status_code for k, r in answers.items()} == {
        "file": 200,
        "invoice pdf": 200,
        "page": 200,
        "page pdf": 200,
        "invalid page": 410,
        "invalid pdf": 410,
        "withdrawn": 410,
        "renew refused": 410,
    }
    for response in answers.values():
        assert_private(response)
    for name in ["invalid page", "withdrawn", "page"]:
        assert '<meta name="robots" content="noindex">' in answers[name].content.decode()


# --- Expiry ----------------------------------------------------------------------------------


LIMITS = [
    (CustomerLink.Kind.DOCUMENT, "document_link_days", 12),
    (CustomerLink.Kind.INVOICE_PDF, "document_link_days", 12),
    (CustomerLink.Kind.INTERACTIVE, "interactive_link_days", 5),
]


def link_of_kind(book, kind):
    extra = {}
    if kind == CustomerLink.Kind.DOCUMENT:
        extra["document"] = add_document(book.customer)
    elif kind == CustomerLink.Kind.INVOICE_PDF:
        extra["invoice"] = book.open1
    return make_link(book.customer, kind, contact=book.kari, **extra)


@pytest.mark.parametrize(("kind", "setting", "days"), LIMITS, ids=[k for k, _, _ in LIMITS])
def test_a_link_works_until_just_before_its_limit(client, book, kind, setting, days):
    set_days(book.entity, document_link_days=12, interactive_link_days=5)
    with time_machine.travel(NOW, tick=False):
        _, token = link_of_kind(book, kind)

    with time_machine.travel(NOW + timedelta(days=days) - timedelta(seconds=1), tick=False):
        assert client.get(url(token)).status_code == 200

    with time_machine.travel(NOW + timedelta(days=days), tick=False):
        expired = client.get(url(token))
    assert expired.status_code == 410
    assert_private(expired)
    assert dead_message(expired) == "This link has expired."
    assert "Email me a new link" in expired.content.decode()
    # The other setting does not govern this kind.
    other = "interactive_link_days" if setting == "document_link_days" else "document_link_days"
    set_days(book.entity, **{other: 365})
    with time_machine.travel(NOW + timedelta(days=days), tick=False):
        assert client.get(url(token)).status_code == 410


def test_defaults_are_90_days_for_documents_and_30_for_the_page(client, book):
    with time_machine.travel(NOW, tick=False):
        _, pdf_token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1)
        _, page_token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE)
    with time_machine.travel(NOW + timedelta(days=30) - timedelta(seconds=1), tick=False):
        assert client.get(url(page_token)).status_code == 200
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        assert client.get(url(page_token)).status_code == 410
        assert client.get(url(pdf_token)).status_code == 200
    with time_machine.travel(NOW + timedelta(days=90), tick=False):
        assert client.get(url(pdf_token)).status_code == 410


def test_the_setting_in_force_at_use_decides(client, book):
    set_days(book.entity, document_link_days=90, interactive_link_days=30)
    with time_machine.travel(NOW, tick=False):
        _, doc_token = link_of_kind(book, CustomerLink.Kind.DOCUMENT)
        _, page_token = link_of_kind(book, CustomerLink.Kind.INTERACTIVE)

    with time_machine.travel(NOW + timedelta(days=20), tick=False):
        assert client.get(url(doc_token)).status_code == 200
        assert client.get(url(page_token)).status_code == 200

        set_days(book.entity, document_link_days=14, interactive_link_days=7)
        assert dead_message(client.get(url(doc_token))) == "This link has expired."
        assert dead_message(client.get(url(page_token))) == "This link has expired."

        # Lengthening again revives them: validity is computed at use, never stored.
        set_days(book.entity, document_link_days=21, interactive_link_days=21)
        assert client.get(url(doc_token)).status_code == 200
        assert client.get(url(page_token)).status_code == 200


def test_one_entitys_setting_does_not_shorten_anothers_links(client, book):
    with time_machine.travel(NOW, tick=False):
        _, token = make_link(book.stranger, CustomerLink.Kind.INTERACTIVE)
    set_days(book.entity, interactive_link_days=1)
    with time_machine.travel(NOW + timedelta(days=10), tick=False):
        assert client.get(url(token)).status_code == 200


# --- Revocation and max uses -----------------------------------------------------------------


def test_staff_withdraw_a_link(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    assert client.get(url(token)).status_code == 200
    staff = Client()
    book.editor(staff)

    response = staff.post(f"/customers/links/{link.pk}/revoke/")

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{book.customer.pk}/documents/"
    assert fresh(link).revoked_at is not None
    [event] = audit("link.revoked", book.entity)
    assert event.actor == book.world.users[Role.COLLECTOR]
    assert event.data == {"link": link.pk, "kind": "interactive"}
    dead = client.get(url(token))
    assert dead.status_code == 410
    assert dead_message(dead) == "This link was withdrawn."
    assert "Fjellvik" not in dead.content.decode()
    # Withdrawing twice is harmless and not audited twice.
    staff.post(f"/customers/links/{link.pk}/revoke/")
    assert len(audit("link.revoked", book.entity)) == 1
    page = staff.get(response["Location"]).content.decode()
    assert "The link was withdrawn." in page
    assert f'action="/customers/links/{link.pk}/revoke/"' not in page


def test_max_uses_refuses_the_next_use(client, book):
    document = add_document(book.customer)
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, document=document, max_uses=2
    )

    assert [client.get(url(token)).status_code for _ in range(2)] == [200, 200]
    third = client.get(url(token))

    assert third.status_code == 410
    assert_private(third)
    assert dead_message(third) == "This link has been used as many times as it allows."
    assert PDF not in third.content
    assert fresh(link).uses == 2
    assert len(uses_of(link)) == 2


def test_max_uses_counts_page_actions_and_pdfs_not_page_views(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, max_uses=1)

    for _ in range(3):
        assert client.get(url(token)).status_code == 200
    assert client.get(url(token, "invoices", book.open1.pk, "pdf")).status_code == 200

    assert fresh(link).uses == 1
    assert client.get(url(token)).status_code == 410
    assert client.get(url(token, "invoices", book.open1.pk, "pdf")).status_code == 410


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: concurrent requests need concurrent connections; SQLite "
    "serialises every writer",
)
def test_concurrent_uses_never_exceed_max_uses(transactional_db, world, monkeypatch):
    book = Book(world)
    document = add_document(book.customer)
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, document=document, max_uses=3
    )
    threads_count = 12
    barrier = threading.Barrier(threads_count, timeout=30)
    statuses, errors, full_path_uses = [], [], []
    # Every download goes through the one-statement path: the full path's use() never runs.
    monkeypatch.setattr(links, "use", lambda link, **kwargs: full_path_uses.append(link))

    def fetch():
        try:
            barrier.wait()
            response = Client().get(url(token))
            body_of(response)
            statuses.append(response.status_code)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert sorted(statuses) == [200] * 3 + [410] * (threads_count - 3)
    assert full_path_uses == []
    assert fresh(link).uses == 3
    assert len(uses_of(link)) == 3


# --- The one-statement download --------------------------------------------------------------

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL serves a document link with one statement; elsewhere the full path does",
)


@on_postgres
def test_a_document_download_is_one_statement(client, book, django_assert_num_queries):
    document = add_document(book.customer)
    set_days(book.entity, document_link_days=5)  # read by the same statement
    with time_machine.travel(NOW, tick=False):
        link, token = make_link(
            book.customer, CustomerLink.Kind.DOCUMENT, document=document, max_uses=5
        )

    with (
        time_machine.travel(NOW + timedelta(days=1), tick=False),
        django_assert_num_queries(1),
    ):
        response = client.get(url(token), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="x" * 500)

    assert response.status_code == 200
    assert_private(response)
    assert body_of(response) == PDF
    assert fresh(link).uses == 1
    [use] = uses_of(link)
    assert (use.ip, use.user_agent, use.used_at) == (
        "203.0.113.7",
        "x" * 300,
        NOW + timedelta(days=1),
    )
    assert use.entity == book.entity


def test_the_one_statement_download_answers_as_the_full_path_does(client, book, monkeypatch):
    document = add_document(book.customer, name=NASTY_NAME)
    link, token = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)

    fast = client.get(url(token))
    fast_body = body_of(fast)  # before the next open: the test storage shares one file object
    monkeypatch.setattr(document_links, "take_download", lambda token, **kwargs: None)
    full = client.get(url(token))

    assert (fast.status_code, dict(fast.headers)) == (full.status_code, dict(full.headers))
    assert fast["Content-Length"] == str(len(PDF))
    assert fast_body == body_of(full) == PDF
    assert fresh(link).uses == 2


@pytest.mark.parametrize("path", ["one statement", "full path"])
def test_a_document_whose_file_is_gone_gets_a_plain_page_and_an_error_log(
    client, book, monkeypatch, caplog, path
):
    document = add_document(book.customer)
    link, token = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)
    document.file.storage.delete(document.file.name)
    if path == "full path":
        monkeypatch.setattr(document_links, "take_download", lambda token, **kwargs: None)

    with caplog.at_level("ERROR", logger="documents.public_views"):
        response = client.get(url(token))

    assert response.status_code == 410
    assert_private(response)
    assert dead_message(response) == "This document is no longer available."
    assert [r.getMessage() for r in caplog.records] == [
        f"Document file {document.file.name} is missing from storage."
    ]


def anonymise_customer(book, link):
    # Only the customer's mark: anonymise() also withdraws the links, another rule.
    with system_code():
        Customer.objects.filter(pk=link.customer_id).update(anonymised_at=NOW)


def delete_document(book, link):
    with system_code():
        Document.objects.get(pk=link.document_id).delete()


def use_up(book, link):
    with system_code():
        CustomerLink.objects.filter(pk=link.pk).update(max_uses=2, uses=2)


def entity_days(days):
    def apply(book, link):
        set_days(book.entity, document_link_days=days)

    return apply


def no_settings_row(book, link):
    SecurityPolicy.objects.filter(entity=book.entity).delete()


USED_UP = "This link has been used as many times as it allows."
# (rule, how the link breaks it, when it is opened, the page's message, renew button)
RULES = [
    ("anonymised", anonymise_customer, timedelta(0), "This link is no longer valid.", False),
    # Only a link whose time ran out offers a fresh one: staff withdrew or limited the
    # others, and a deleted document has nothing to link to.
    ("withdrawn", lambda book, link: revoke(link), timedelta(0), "This link was withdrawn.", False),
    ("deleted", delete_document, timedelta(0), "This document is no longer available.", False),
    ("entity-days", entity_days(12), timedelta(days=12), "This link has expired.", True),
    ("default-days", no_settings_row, timedelta(days=90), "This link has expired.", True),
    ("used-up", use_up, timedelta(0), USED_UP, False),
]


@pytest.mark.parametrize(
    ("breaks", "opened_after", "message", "renewable"),
    [rule[1:] for rule in RULES],
    ids=[rule[0] for rule in RULES],
)
def test_a_document_link_that_breaks_a_rule_answers_as_before_and_counts_nothing(
    client, book, breaks, opened_after, message, renewable
):
    with time_machine.travel(NOW, tick=False):
        link, token = make_link(
            book.customer,
            CustomerLink.Kind.DOCUMENT,
            contact=book.kari,
            document=add_document(book.customer),
        )
    breaks(book, link)
    uses_before = fresh(link).uses

    with time_machine.travel(NOW + opened_after, tick=False):
        response = client.get(url(token))

    assert response.status_code == 410
    assert_private(response)
    assert dead_message(response) == message
    assert ("Email me a new link" in response.content.decode()) == renewable
    assert PDF not in response.content
    assert fresh(link).uses == uses_before
    assert uses_of(link) == []


@pytest.mark.parametrize(
    ("settings_row", "days"), [(True, 12), (False, 90)], ids=["entity-days", "default-days"]
)
def test_a_document_link_expires_at_the_exact_instant(client, book, settings_row, days):
    if settings_row:
        set_days(book.entity, document_link_days=days)
    with time_machine.travel(NOW, tick=False):
        link, token = make_link(
            book.customer, CustomerLink.Kind.DOCUMENT, document=add_document(book.customer)
        )
    limit = NOW + timedelta(days=days)

    with time_machine.travel(limit - timedelta(microseconds=1), tick=False):
        assert client.get(url(token)).status_code == 200
    with time_machine.travel(limit, tick=False):
        expired = client.get(url(token))

    assert dead_message(expired) == "This link has expired."
    assert fresh(link).uses == 1
    assert len(uses_of(link)) == 1


def group_days_only(book, link):
    """Multi-level settings do not govern links: the entity's defaults do."""
    SecurityPolicy.objects.filter(entity=book.entity).delete()
    SecurityPolicy.objects.update_or_create(
        group=book.world.group, defaults={"document_link_days": 1}
    )


def one_use_left(book, link):
    with system_code():
        CustomerLink.objects.filter(pk=link.pk).update(max_uses=3, uses=2)


STATES = [
    ("usable", lambda book, link: None),
    ("one-use-left", one_use_left),
    ("group-days-only", group_days_only),
    *[(rule[0], rule[1]) for rule in RULES],
]
AGES = [
    timedelta(0),
    timedelta(days=12) - timedelta(microseconds=1),
    timedelta(days=12),
    timedelta(days=90) - timedelta(microseconds=1),
    timedelta(days=90),
]


@on_postgres
@pytest.mark.parametrize("state", [s[1] for s in STATES], ids=[s[0] for s in STATES])
def test_the_download_statement_agrees_with_problem_with(book, state):
    """links.DOCUMENT_DOWNLOAD writes problem_with()'s rules again in SQL: for every rule,
    and on both sides of each expiry instant, both say the same, and the statement counts
    and logs a use exactly when it serves the file."""
    for age in AGES:
        document = add_document(book.customer)
        with time_machine.travel(NOW, tick=False):
            link, token = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)
        state(book, link)
        now = NOW + age
        uses_before = fresh(link).uses

        usable = links.problem_with(links.find(token), now) is None
        download = document_links.take_download(token, ip="192.0.2.1", user_agent="Agent", now=now)

        assert (download is not None) == usable, age
        assert fresh(link).uses == uses_before + usable, age
        assert len(uses_of(link)) == usable, age
        if download:
            assert download == document_links.Download(
                book.entity.pk, document.file.name, document.original_name, document.content_type
            )


@on_postgres
@pytest.mark.parametrize(
    "kind",
    [CustomerLink.Kind.INVOICE_PDF, CustomerLink.Kind.INTERACTIVE, CustomerLink.Kind.CONSENT],
)
def test_the_download_statement_leaves_other_kinds_to_the_full_path(book, kind):
    link, token = link_of_kind(book, kind)
    now = timezone.now()

    assert links.problem_with(links.find(token), now) is None
    assert document_links.take_download(token, ip=None, user_agent=None, now=now) is None
    assert fresh(link).uses == 0
    assert uses_of(link) == []


@pytest.mark.parametrize("token", ["", "A" * 101, "no-such-token"])
def test_the_download_statement_answers_nothing_for_unknown_tokens(db, token):
    assert document_links.take_download(token, ip=None, user_agent=None, now=NOW) is None


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


# --- Tokens ----------------------------------------------------------------------------------


def test_changing_any_character_of_the_token_gives_the_invalid_page(client, book):
    document = add_document(book.customer, name="secret-contract.pdf")
    doc_link, doc_token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=document
    )
    page_link, page_token = make_link(
        book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari
    )
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    for token in [doc_token, page_token]:
        assert len(token) >= 43
        for position, char in enumerate(token):
            replacement = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
            tampered = token[:position] + replacement + token[position + 1 :]
            response = client.get(url(tampered))
            assert response.status_code == 410, position
            assert_private(response)
            content = response.content.decode()
            assert dead_message(response) == "This link is not valid.", position
            for leak in ["Fjellvik", "Kari", "F-1001", "secret-contract", "Email me a new"]:
                assert leak not in content, (position, leak)
            assert PDF not in response.content

    for variant in [doc_token[:-1], doc_token + "A", doc_token.swapcase(), "A" * 101]:
        assert client.get(url(variant)).status_code == 410
    tampered_page = "X" + page_token[1:] if page_token[0] != "X" else "Y" + page_token[1:]
    assert client.get(url(tampered_page, "invoices", book.open1.pk, "pdf")).status_code == 410
    post = client.post(
        url(tampered_page),
        {"action": "dispute", "invoice_id": book.open1.pk, f"d{book.open1.pk}-comment": "x"},
    )
    assert post.status_code == 410
    assert fresh(doc_link).uses == 0 and fresh(page_link).uses == 0
    with system_code():
        assert not LinkUse.objects.exists()
        assert not InvoiceAction.objects.exists()


def test_the_database_holds_only_the_tokens_hash(book):
    made = [
        make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari),
        make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1),
        make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=add_document(book.customer)),
    ]

    with system_code():
        rows = list(CustomerLink.objects.values())
    dumped = repr(rows) + repr(list(AuditEvent.objects.values()))
    for link, token in made:
        assert token not in dumped
        assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert links.find(token) == link
    assert len({token for _, token in made}) == 3


# --- The use log -----------------------------------------------------------------------------


def test_each_use_is_logged_with_ip_and_user_agent(client, book):
    document = add_document(book.customer)
    link, token = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)

    with time_machine.travel(NOW, tick=False):
        client.get(url(token), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140")
    client.get(url(token), REMOTE_ADDR="2001:db8::1", HTTP_USER_AGENT="x" * 500)

    older, newer = uses_of(link)
    assert (older.ip, older.user_agent, older.used_at) == ("203.0.113.7", "Firefox/140", NOW)
    assert (newer.ip, newer.user_agent) == ("2001:db8::1", "x" * 300)
    assert older.entity == book.entity
    assert fresh(link).uses == 2


# --- Renewal ---------------------------------------------------------------------------------


def expired_document_link(book, **fields):
    document = add_document(book.customer)
    with time_machine.travel(NOW - timedelta(days=100), tick=False):
        return make_link(
            book.customer,
            CustomerLink.Kind.DOCUMENT,
            contact=book.kari,
            document=document,
            **fields,
        )


def test_email_me_a_new_link_sends_it_to_the_contact_on_file(
    client, book, django_capture_on_commit_callbacks
):
    old, token = expired_document_link(book, max_uses=5)
    dead = client.get(url(token))
    assert dead.status_code == 410
    assert f'action="/l/{token}/renew/"' in dead.content.decode()
    assert "Email me a new link" in dead.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url(token, "renew"),
            {"email": "attacker@evil.example", "to": "attacker@evil.example"},
        )

    assert response.status_code == 200
    assert_private(response)
    assert "A new link is on its way to the email address we have on file." in (
        response.content.decode()
    )
    [message] = mail.outbox
    assert message.to == ["kari@fjellvik.example"]
    assert "attacker" not in repr(message.message().as_string())
    [new_url] = set(URL_RE.findall(message.body))
    new_token = urlsplit(new_url).path.split("/")[2]
    assert new_token != token
    with system_code():
        fresh_link = CustomerLink.objects.exclude(pk=old.pk).get()
        email = OutgoingEmail.objects.get()
    assert (fresh_link.kind, fresh_link.document_id, fresh_link.contact_id) == (
        old.kind,
        old.document_id,
        book.kari.pk,
    )
    assert fresh_link.max_uses == 5
    assert (email.status, email.to, email.kind) == ("sent", "kari@fjellvik.example", "link")
    download = Client().get(urlsplit(new_url).path)
    assert download.status_code == 200
    assert body_of(download) == PDF
    # The old link stays dead.
    assert client.get(url(token)).status_code == 410


def test_a_new_link_is_sent_at_most_once_per_10_minutes(
    client, book, django_capture_on_commit_callbacks
):
    _, token = expired_document_link(book)
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert client.post(url(token, "renew")).status_code == 200
    assert len(mail.outbox) == 1

    with (
        time_machine.travel(NOW + timedelta(minutes=9, seconds=59), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        again = client.post(url(token, "renew"))
    assert again.status_code == 429
    assert_private(again)
    assert "A new link was sent a few minutes ago. Check your email." in again.content.decode()
    assert "Email me a new link" not in again.content.decode()
    assert len(mail.outbox) == 1

    with (
        time_machine.travel(NOW + timedelta(minutes=10), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert client.post(url(token, "renew")).status_code == 200
    assert len(mail.outbox) == 2
    assert {tuple(m.to) for m in mail.outbox} == {("kari@fjellvik.example",)}


def test_renewal_of_an_unknown_token_or_a_link_without_contact_sends_nothing(
    client, book, django_capture_on_commit_callbacks
):
    document = add_document(book.customer)
    with time_machine.travel(NOW - timedelta(days=100), tick=False):
        _, no_contact = make_link(book.customer, CustomerLink.Kind.DOCUMENT, document=document)
    assert "Email me a new link" not in client.get(url(no_contact)).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            client.post(url("not-a-token", "renew"), {"email": "a@evil.example"}),
            client.post(url(no_contact, "renew")),
        ]

    for answer in answers:
        assert answer.status_code == 410
        assert "No new link can be sent for this one." in answer.content.decode()
    assert mail.outbox == []
    assert client.get(url("x", "renew")).status_code == 302


@pytest.mark.parametrize(
    "kind", [CustomerLink.Kind.DOCUMENT, CustomerLink.Kind.INTERACTIVE, CustomerLink.Kind.CONSENT]
)
def test_a_link_checkers_head_request_spends_no_use(client, book, kind):
    """Mail scanners and previews send HEAD before the customer clicks."""
    fields = {"document": add_document(book.customer)} if kind == CustomerLink.Kind.DOCUMENT else {}
    link, token = make_link(book.customer, kind, contact=book.kari, max_uses=1, **fields)
    path = f"/c/{token}/" if kind == CustomerLink.Kind.CONSENT else url(token)

    for _ in range(3):
        checked = client.head(path)
        assert checked.status_code == 200
        assert_private(checked)
    assert fresh(link).uses == 0
    assert uses_of(link) == []
    if kind == CustomerLink.Kind.INTERACTIVE:
        # The page is opened as often as the customer likes: each time logged, never spent.
        for _ in range(2):
            assert client.get(path).status_code == 200
        assert fresh(link).uses == 0
        assert [use.counted for use in uses_of(link)] == [False, False]
        pdf = f"/l/{token}/invoices/{book.open1.pk}/pdf/"
        assert client.head(pdf).status_code == 200
        assert client.get(pdf).status_code == 200  # a download spends the one use
        assert client.head(pdf).status_code == 410
    else:
        assert client.get(path).status_code == 200  # the customer's click still works
        assert client.head(path).status_code == 410  # and afterwards it says it is spent
    assert fresh(link).uses == 1


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
    assert "No (page opened)" in content
    assert "1 access. Opening the customer's page is logged but spends no use" in content
    # Another entity's admin, or someone who cannot see the customer, gets nothing.
    outsider = work_in(Client(), book.world.outsider, book.world.c)
    assert outsider.get(f"/customers/links/{link.pk}/accesses/").status_code == 404


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
    assert Client().get(url(page_token)).status_code == 200

    same = client.post(edit, {"name": "Kari N.", "email": "kari@fjellvik.example"}, follow=True)
    assert "The contact was saved." in same.content.decode()
    assert "link(s) sent to the old one" not in same.content.decode()
    assert Client().get(url(page_token)).status_code == 200

    moved = client.post(edit, {"name": "Kari N.", "email": "kari@newjob.example"}, follow=True)
    assert "The new email address ends 2 link(s) sent to the old one" in moved.content.decode()
    assert Client().get(url(page_token)).status_code == 410
    assert Client().get(f"/c/{consent_token}/").status_code == 410


def withdraw_email_consent(book, link):
    grant_email_consent(book.kari, granted=False)


def withdraw_link(book, link):
    revoke(link)


def use_it_up(book, link):
    with system_code():
        CustomerLink.objects.filter(pk=link.pk).update(max_uses=1, uses=1)


def delete_its_document(book, link):
    with system_code():
        Document.objects.filter(pk=link.document_id).delete()


def anonymise_the_customer(book, link):
    settle(book.customer)
    erase(book)


@pytest.mark.parametrize(
    "undo",
    [withdraw_email_consent, withdraw_link, use_it_up, delete_its_document, anonymise_the_customer],
)
def test_no_new_link_where_staff_would_not_send_one(
    client, book, django_capture_on_commit_callbacks, undo
):
    """Asking for a fresh link must not undo a withdrawal, a use limit, a withdrawn consent
    or an anonymisation, nor loop on a document that is gone."""
    link, token = expired_document_link(book, max_uses=5)
    undo(book, link)

    dead = client.get(url(token))
    assert dead.status_code == 410
    assert "Email me a new link" not in dead.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(url(token, "renew"))

    assert refused.status_code == 410
    assert "No new link can be sent for this one." in refused.content.decode()
    assert mail.outbox == []
    with system_code():
        assert CustomerLink.objects.filter(customer=book.customer).count() == 1


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
    Client().get(url(pdf_token))
    Client().get(url(used_token, "invoices", book.open1.pk, "pdf"))
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


def grant_email_consent(contact, granted=True):
    from accounts.tenancy import tenant_scope
    from consent.models import ConsentSource
    from consent.services import REMINDER_EMAIL, purposes_for, set_consents

    with tenant_scope(contact.entity):
        purpose = next(p for p in purposes_for(contact.entity) if p.code == REMINDER_EMAIL)
        set_consents(contact, {purpose: granted}, source=ConsentSource.STAFF)


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
    assert body_of(Client().get(urlsplit(link_url).path)) == PDF
    assert Client().get(urlsplit(link_url).path).status_code == 410

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


# --- The interactive page --------------------------------------------------------------------


@pytest.fixture
def page(book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    return link, token


def promise(client, token, invoice, day):
    return client.post(
        url(token),
        {
            "action": "promise",
            "invoice_id": invoice.pk,
            f"p{invoice.pk}-invoice": invoice.pk,
            f"p{invoice.pk}-promised_on": day.isoformat() if hasattr(day, "isoformat") else day,
        },
        REMOTE_ADDR="198.51.100.4",
        HTTP_USER_AGENT="Safari/18",
    )


def dispute(client, token, invoice, comment):
    return client.post(
        url(token),
        {
            "action": "dispute",
            "invoice_id": invoice.pk,
            f"d{invoice.pk}-invoice": invoice.pk,
            f"d{invoice.pk}-comment": comment,
        },
    )


def test_the_page_shows_open_invoices_and_a_get_only_logs_the_access(client, book, page):
    link, token = page
    with system_code():
        before = (
            InvoiceAction.objects.count(),
            LinkUse.objects.count(),
            AuditEvent.objects.count(),
            OutgoingEmail.objects.count(),
        )

    response = client.get(url(token))

    assert response.status_code == 200
    assert_private(response)
    html = response.content.decode()
    assert "Open invoices for Fjellvik Transport AS" in html
    assert 'data-testid="invoice-F-1001"' in html and 'data-testid="invoice-F-1002"' in html
    assert "Outstanding <strong>1,000.00 NOK</strong>" in html
    assert "Outstanding <strong>400.00 NOK</strong>" in html
    for absent in ["F-1000", "F-2001", "F-9001", "Havbris"]:
        assert absent not in html
    assert f'href="/l/{token}/invoices/{book.open1.pk}/pdf/"' in html
    with system_code():
        after = (
            InvoiceAction.objects.count(),
            LinkUse.objects.count(),
            AuditEvent.objects.count(),
            OutgoingEmail.objects.count(),
        )
    assert after == (before[0], before[1] + 1, before[2], before[3])
    assert [use.counted for use in uses_of(link)] == [False]  # logged, no use spent
    assert fresh(link).uses == 0


def test_a_promise_to_pay_is_recorded_audited_and_shown_to_staff(client, book, page):
    link, token = page
    with time_machine.travel(NOW, tick=False):
        response = promise(client, token, book.open1, date(2026, 6, 20))

    assert response.status_code == 302
    assert response["Location"] == url(token)
    with system_code():
        [action] = InvoiceAction.objects.all()
    assert (action.kind, action.invoice, action.promised_on, action.link) == (
        "promise",
        book.open1,
        date(2026, 6, 20),
        link,
    )
    assert action.entity == book.entity
    [event] = audit("invoice.promised", book.entity)
    assert event.actor is None
    assert event.target_id == str(book.customer.pk)
    assert event.data == {"invoice": "F-1001", "link": link.pk}
    [use] = uses_of(link)
    assert (use.ip, use.user_agent) == ("198.51.100.4", "Safari/18")
    shown = client.get(url(token)).content.decode()
    assert "You promised to pay by 2026-06-20." in shown

    staff = Client()
    book.editor(staff)
    tab = staff.get(f"/customers/{book.customer.pk}/invoices/").content.decode()
    assert "The customer promised to pay by <strong>2026-06-20</strong>" in tab


def test_a_promise_for_today_is_accepted_and_a_past_date_refused(client, book, page):
    _, token = page
    with time_machine.travel(NOW, tick=False):
        past = promise(client, token, book.open1, date(2026, 5, 31))
        assert past.status_code == 200
        assert_private(past)
        assert "Choose today or a later date." in past.content.decode()
        with system_code():
            assert not InvoiceAction.objects.exists()
        assert audit("invoice.promised", book.entity) == []

        garbage = promise(client, token, book.open1, "next week")
        assert garbage.status_code == 200
        assert "Enter a valid date." in garbage.content.decode()

        today = promise(client, token, book.open1, date(2026, 6, 1))
    assert today.status_code == 302
    with system_code():
        assert InvoiceAction.objects.get().promised_on == date(2026, 6, 1)


def test_a_promise_more_than_a_year_ahead_is_refused(client, book, page):
    _, token = page
    with time_machine.travel(NOW, tick=False):  # 2026-06-01
        for day in (date(2027, 6, 2), "9999-12-31"):
            far = promise(client, token, book.open1, day)
            assert far.status_code == 200
            assert "Choose a date within a year" in far.content.decode()
        assert promise(client, token, book.open1, date(2027, 6, 1)).status_code == 302
    with system_code():
        assert [a.promised_on for a in InvoiceAction.objects.all()] == [date(2027, 6, 1)]


def test_the_page_takes_no_action_on_and_serves_no_pdf_of_a_paid_invoice(client, book, page):
    link, token = page
    assert dispute(client, token, book.paid, "Hidden dispute").status_code == 200
    assert promise(client, token, book.paid, date(2099, 1, 1)).status_code == 200
    with system_code():
        assert not InvoiceAction.objects.exists()
    assert client.get(f"/l/{token}/invoices/{book.paid.pk}/pdf/").status_code == 404
    assert client.get(f"/l/{token}/invoices/{book.open1.pk}/pdf/").status_code == 200
    assert fresh(link).uses == 1  # only the open invoice's PDF spent a use


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


def test_a_dispute_needs_a_comment_and_is_shown_to_staff(client, book, page):
    link, token = page

    empty = dispute(client, token, book.open2, "   ")
    assert empty.status_code == 200
    assert "This field is required." in empty.content.decode()
    with system_code():
        assert not InvoiceAction.objects.exists()

    response = dispute(client, token, book.open2, "We never received the goods <b>!</b>")

    assert response.status_code == 302
    with system_code():
        [action] = InvoiceAction.objects.all()
    assert (action.kind, action.invoice, action.promised_on) == ("dispute", book.open2, None)
    assert action.comment == "We never received the goods <b>!</b>"
    [event] = audit("invoice.disputed", book.entity)
    assert event.data == {"invoice": "F-1002", "link": link.pk}
    staff = Client()
    book.editor(staff)
    tab = staff.get(f"/customers/{book.customer.pk}/invoices/").content.decode()
    assert (
        "The customer disputes this invoice: “We never received the goods &lt;b&gt;!&lt;/b&gt;”"
        in tab
    )


def test_actions_on_another_customers_invoice_are_ignored(client, book, page):
    _, token = page

    for invoice in [book.others_invoice, book.strangers_invoice]:
        response = dispute(client, token, invoice, "Not ours")
        assert response.status_code == 200
        assert promise(client, token, invoice, date(2099, 1, 1)).status_code == 200

    with system_code():
        assert not InvoiceAction.objects.exists()
    assert audit("invoice.disputed", book.entity) == []


@pytest.mark.parametrize("invoice_id", ["99999999999999999999999", "-1", "abc", ""])
def test_an_action_naming_no_invoice_shows_the_page_again(client, book, page, invoice_id):
    _, token = page

    response = client.post(url(token), {"action": "dispute", "invoice_id": invoice_id})

    assert response.status_code == 200
    assert "F-1001" in response.content.decode()
    with system_code():
        assert not InvoiceAction.objects.exists()


def test_the_per_invoice_pdf_address_takes_no_posts(client, book, page):
    _, token = page
    response = client.post(url(token, "invoices", book.open1.pk, "pdf"))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_other_link_kinds_take_no_submissions(client, book):
    _, token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1)
    assert dispute(client, token, book.open1, "x").status_code == 404
    assert client.get(url(token, "invoices", book.open1.pk, "pdf")).status_code == 404
    with system_code():
        assert not InvoiceAction.objects.exists()


def test_the_per_invoice_pdf_is_only_for_this_customers_invoices(client, book, page):
    link, token = page

    response = client.get(url(token, "invoices", book.open1.pk, "pdf"))

    assert response.status_code == 200
    assert_private(response)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="invoice-F-1001.pdf"'
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    assert "Invoice F-1001 (copy)" in text
    assert "Fjellvik Transport AS" in text
    assert fresh(link).uses == 1

    for invoice in [book.others_invoice, book.strangers_invoice]:
        other = client.get(url(token, "invoices", invoice.pk, "pdf"))
        assert other.status_code == 404
        assert b"%PDF" not in other.content
    assert client.get(url(token, "invoices", 999999, "pdf")).status_code == 404
    assert fresh(link).uses == 1


def test_an_invoice_pdf_link_gives_that_invoice(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open2)

    response = client.get(url(token))

    assert response.status_code == 200
    assert_private(response)
    assert response["Content-Type"] == "application/pdf"
    assert "Invoice F-1002 (copy)" in pdf_text(response.content)
    assert "400.00 NOK" in pdf_text(response.content)
    assert fresh(link).uses == 1


# --- Anonymisation ---------------------------------------------------------------------------


@pytest.fixture
def settled(book):
    """The customer with everything paid, documents of both kinds and used links."""
    settle(book.customer)
    supporting = add_document(book.customer, PNG, name="Kari passport.png")
    kept = add_document(book.customer, kind=Document.Kind.INVOICE, name="F-1001.pdf")
    made = {
        "supporting": make_link(
            book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=supporting
        ),
        "invoice doc": make_link(
            book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=kept
        ),
        "page": make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari),
        "pdf": make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1),
    }
    for _, token in made.values():
        Client().get(url(token), REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Firefox/140")
    Client().get(
        url(made["page"][1], "invoices", book.open1.pk, "pdf"),
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="Firefox/140",
    )
    other_link, other_token = make_link(book.other, CustomerLink.Kind.INTERACTIVE)
    Client().get(
        url(other_token, "invoices", book.others_invoice.pk, "pdf"),
        REMOTE_ADDR="198.51.100.1",
        HTTP_USER_AGENT="Chrome/1",
    )
    return supporting, kept, made, other_link


def test_anonymisation_deletes_supporting_documents_and_keeps_invoices(
    book, settled, django_capture_on_commit_callbacks
):
    supporting, kept, _, _ = settled
    assert default_storage.exists(supporting.file.name)

    with django_capture_on_commit_callbacks(execute=True):
        erase(book)

    with system_code():
        assert list(Document.objects.filter(customer=book.customer)) == [kept]
    assert not default_storage.exists(supporting.file.name)
    assert default_storage.exists(kept.file.name)
    [event] = audit("customer.anonymised", book.entity)
    assert event.data["documents_deleted"] == 1


def test_anonymisation_keeps_files_until_commit(book, settled, django_capture_on_commit_callbacks):
    supporting, _, _, _ = settled
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        erase(book)
    assert default_storage.exists(supporting.file.name)
    for callback in callbacks:
        callback()
    assert not default_storage.exists(supporting.file.name)


def test_anonymisation_revokes_links_and_scrubs_their_use_log(client, book, settled):
    _, _, made, other_link = settled

    erase(book)

    with system_code():
        remaining = list(CustomerLink.objects.filter(customer=book.customer))
        customer_uses = list(LinkUse.objects.filter(link__customer=book.customer))
        other_uses = list(LinkUse.objects.filter(link=other_link))
    assert remaining and all(link.revoked_at is not None for link in remaining)
    assert customer_uses
    assert {(u.ip, u.user_agent) for u in customer_uses} == {(None, "")}
    assert [(u.ip, u.user_agent) for u in other_uses] == [("198.51.100.1", "Chrome/1")]
    assert fresh(other_link).revoked_at is None
    for name, (_, token) in made.items():
        response = client.get(url(token))
        assert response.status_code == 410, name
        assert_private(response)
        assert "Email me a new link" not in response.content.decode()
        assert "Kari" not in response.content.decode()


def test_after_anonymisation_the_dead_page_says_no_longer_valid(client, book, settled):
    _, _, made, _ = settled

    erase(book)

    for name in ["invoice doc", "page", "pdf"]:
        assert dead_message(client.get(url(made[name][1]))) == "This link is no longer valid."


def test_a_link_made_after_anonymisation_is_no_longer_valid(client, book, settled):
    erase(book)
    _, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE)

    response = client.get(url(token))

    assert response.status_code == 410
    assert dead_message(response) == "This link is no longer valid."


@pytest.mark.parametrize(
    ("number", "disposition"),
    [
        ('F-"7";x', 'attachment; filename="invoice-F-\\"7\\";x.pdf"'),
        (
            "F-7\r\nSet-Cookie: a=b",
            "attachment; filename*=utf-8''invoice-F-7%0D%0ASet-Cookie%3A%20a%3Db.pdf",
        ),
        ("Faktura-Ø7", "attachment; filename*=utf-8''invoice-Faktura-%C3%987.pdf"),
    ],
)
def test_an_invoice_copy_pdf_keeps_a_well_formed_file_name(client, book, number, disposition):
    item = make_invoice(book.customer, number, "100.00")
    book.editor(client)

    response = client.get(f"/customers/invoices/{item.pk}/copy/?format=pdf")

    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")
    assert response["Content-Disposition"] == disposition
    assert "Set-Cookie" not in response.headers
