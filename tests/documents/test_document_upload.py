"""Documents staff upload on the Documents tab: checked by content (an invoice must be a
PDF, a supporting document a PDF, PNG or JPEG), at most 10 MB, stored with its checksum
and audited; deleting one (asked first, audited, the file removed, its links withdrawn
but kept on record); and who may change documents (viewers may not upload, delete,
send or withdraw; another entity's documents and links are a 404)."""

import hashlib

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import CustomerLink
from documents.models import Document, OutgoingEmail
from tests.conftest import work_in
from tests.helpers import (
    EDITORS,
    PDF,
    PNG,
    VIEWERS,
    add_document,
    assert_private,
    audit,
    fresh,
    make_link,
    url,
    uses_of,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
NOT_PDF = "An invoice must be a PDF file (this file&#x27;s content is not PDF)."
NOT_ANY = "Upload a PDF, PNG or JPEG file (this file&#x27;s content is none of them)."


def upload(client, customer, filename, content, kind="invoice", **extra):
    data = {"action": "upload", "kind": kind, "file": SimpleUploadedFile(filename, content)}
    data.update(extra)
    return client.post(f"/customers/{customer.pk}/documents/", data)


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
    assert client.post(url(token)).status_code == 200
    book.editor(client, Role.CREDIT_MANAGER)

    # The first press asks; nothing is deleted yet.
    ask = client.post(f"/customers/documents/{document.pk}/delete/")
    assert ask.status_code == 200
    assert "<h1>Delete contract.pdf?</h1>" in ask.content.decode()
    assert 'name="confirm" value="yes"' in ask.content.decode()
    with system_code():
        assert Document.objects.filter(pk=document.pk).exists()
    assert Client().post(url(token)).status_code == 200

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
    dead = Client().get(url(token), follow=True)
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
