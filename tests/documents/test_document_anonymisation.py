"""What anonymising a customer does to its documents and links: supporting documents
deleted (their files once the transaction commits), invoices kept, links withdrawn and
their use log scrubbed of IP and user agent; a later link is no longer valid."""

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from accounts.tenancy import system_code
from customers.models import CustomerLink, LinkUse
from documents.models import Document
from tests.helpers import (
    PNG,
    add_document,
    assert_private,
    audit,
    dead_message,
    erase,
    fresh,
    make_link,
    settle,
    url,
)

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
    for name, (_, token) in made.items():
        use = Client().get if name == "page" else Client().post  # the page opened, files taken
        use(url(token), REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Firefox/140")
    Client().post(
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
        response = client.get(url(token), follow=True)
        assert response.status_code == 410, name
        assert_private(response)
        assert "Email me a new link" not in response.content.decode()
        assert "Kari" not in response.content.decode()


def test_after_anonymisation_the_dead_page_says_no_longer_valid(client, book, settled):
    _, _, made, _ = settled

    erase(book)

    for name in ["invoice doc", "page", "pdf"]:
        dead = client.get(url(made[name][1]), follow=True)
        assert dead_message(dead) == "This link is no longer valid."


def test_a_link_made_after_anonymisation_is_no_longer_valid(client, book, settled):
    erase(book)
    _, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE)

    response = client.get(url(token), follow=True)

    assert response.status_code == 410
    assert dead_message(response) == "This link is no longer valid."
