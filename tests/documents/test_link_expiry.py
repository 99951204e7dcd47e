"""When a customer link expires (from the entity's settings in force at use, never
stored) and how the customer gets a new one ("Email me a new link": to the contact on
file, at most once per 10 minutes, never where staff would not send one)."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.test import Client

from accounts.tenancy import system_code
from customers.models import CustomerLink
from documents.models import Document, OutgoingEmail
from tests.helpers import (
    NOW,
    PDF,
    URL_RE,
    add_document,
    assert_private,
    body_of,
    dead_message,
    erase,
    grant_email_consent,
    link_of_kind,
    make_link,
    revoke,
    set_days,
    settle,
    url,
)

# --- Expiry ----------------------------------------------------------------------------------


LIMITS = [
    (CustomerLink.Kind.DOCUMENT, "document_link_days", 12),
    (CustomerLink.Kind.INVOICE_PDF, "document_link_days", 12),
    (CustomerLink.Kind.INTERACTIVE, "interactive_link_days", 5),
]


@pytest.mark.parametrize(("kind", "setting", "days"), LIMITS, ids=[k for k, _, _ in LIMITS])
def test_a_link_works_until_just_before_its_limit(client, book, kind, setting, days):
    set_days(book.entity, document_link_days=12, interactive_link_days=5)
    with time_machine.travel(NOW, tick=False):
        _, token = link_of_kind(book, kind)

    with time_machine.travel(NOW + timedelta(days=days) - timedelta(seconds=1), tick=False):
        assert client.get(url(token), follow=True).status_code == 200

    with time_machine.travel(NOW + timedelta(days=days), tick=False):
        expired = client.get(url(token), follow=True)
    assert expired.status_code == 410
    assert_private(expired)
    assert dead_message(expired) == "This link has expired."
    assert "Email me a new link" in expired.content.decode()
    # The other setting does not govern this kind.
    other = "interactive_link_days" if setting == "document_link_days" else "document_link_days"
    set_days(book.entity, **{other: 365})
    with time_machine.travel(NOW + timedelta(days=days), tick=False):
        assert client.get(url(token), follow=True).status_code == 410


def test_defaults_are_90_days_for_documents_and_30_for_the_page(client, book):
    with time_machine.travel(NOW, tick=False):
        _, pdf_token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1)
        _, page_token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE)
    with time_machine.travel(NOW + timedelta(days=30) - timedelta(seconds=1), tick=False):
        assert client.get(url(page_token), follow=True).status_code == 200
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        assert client.get(url(page_token), follow=True).status_code == 410
        assert client.get(url(pdf_token), follow=True).status_code == 200
    with time_machine.travel(NOW + timedelta(days=90), tick=False):
        assert client.get(url(pdf_token), follow=True).status_code == 410


def test_the_setting_in_force_at_use_decides(client, book):
    set_days(book.entity, document_link_days=90, interactive_link_days=30)
    with time_machine.travel(NOW, tick=False):
        _, doc_token = link_of_kind(book, CustomerLink.Kind.DOCUMENT)
        _, page_token = link_of_kind(book, CustomerLink.Kind.INTERACTIVE)

    with time_machine.travel(NOW + timedelta(days=20), tick=False):
        assert client.get(url(doc_token), follow=True).status_code == 200
        assert client.get(url(page_token), follow=True).status_code == 200

        set_days(book.entity, document_link_days=14, interactive_link_days=7)
        assert dead_message(client.get(url(doc_token), follow=True)) == "This link has expired."
        assert dead_message(client.get(url(page_token), follow=True)) == "This link has expired."

        # Lengthening again revives them: validity is computed at use, never stored.
        set_days(book.entity, document_link_days=21, interactive_link_days=21)
        assert client.get(url(doc_token), follow=True).status_code == 200
        assert client.get(url(page_token), follow=True).status_code == 200


def test_one_entitys_setting_does_not_shorten_anothers_links(client, book):
    with time_machine.travel(NOW, tick=False):
        _, token = make_link(book.stranger, CustomerLink.Kind.INTERACTIVE)
    set_days(book.entity, interactive_link_days=1)
    with time_machine.travel(NOW + timedelta(days=10), tick=False):
        assert client.get(url(token), follow=True).status_code == 200


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
    dead = client.get(url(token), follow=True)
    assert dead.status_code == 410
    [(page_url, _)] = dead.redirect_chain  # the page's clean URL, without the token
    assert f'action="{page_url}renew/"' in dead.content.decode()
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
    download = Client().post(urlsplit(new_url).path)
    assert download.status_code == 200
    assert body_of(download) == PDF
    # The old link stays dead.
    assert client.get(url(token), follow=True).status_code == 410


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
    assert again["Retry-After"] == "600"  # at most one fresh link every 10 minutes
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
    assert "Email me a new link" not in client.get(url(no_contact), follow=True).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            client.post(url("not-a-token", "renew"), {"email": "a@evil.example"}),
            client.post(url(no_contact, "renew")),
        ]

    for answer in answers:
        assert answer.status_code == 410
        assert "No new link can be sent for this one." in answer.content.decode()
    assert mail.outbox == []
    assert client.get(url("x", "renew")).status_code == 410


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

    dead = client.get(url(token), follow=True)
    assert dead.status_code == 410
    assert "Email me a new link" not in dead.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(url(token, "renew"))

    assert refused.status_code == 410
    assert "No new link can be sent for this one." in refused.content.decode()
    assert mail.outbox == []
    with system_code():
        assert CustomerLink.objects.filter(customer=book.customer).count() == 1
