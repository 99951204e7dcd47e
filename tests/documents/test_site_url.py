"""Emailed links use the one configured base URL (settings.SITE_URL), never the Host
header of the request that made them: a forged Host (one ALLOWED_HOSTS lets through, as a
wildcard or a proxy that passes Host on would) cannot turn a customer's email into a link
to the attacker's site. Every email that carries links is made here from such a request:
document links, a payment reminder, a fresh link for an expired one, a consent link."""

import re
from datetime import timedelta

import time_machine
from django.core import mail
from django.test import Client, override_settings

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import CustomerLink
from documents.models import OutgoingEmail
from tests.conftest import work_in
from tests.helpers import NOW, add_document, make_link, url

SITE = "https://guardrail.example.com"
FORGED = "evil.example"
ANY_URL = re.compile(r"https?://[^\s\"'<>]+")

forged_host = override_settings(ALLOWED_HOSTS=[FORGED, "testserver"], SITE_URL=SITE)


def bodies():
    with system_code():
        return [(e.kind, e.text_body + "\n" + e.html_body) for e in OutgoingEmail.objects.all()]


def assert_links_on_site(kinds):
    sent = bodies()
    assert sorted(kind for kind, _ in sent) == sorted(kinds)
    for kind, body in sent:
        found = ANY_URL.findall(body)
        assert found, kind
        for link in found:
            assert link.startswith(SITE + "/"), (kind, link)
        assert FORGED not in body, kind
    for message in mail.outbox:
        assert FORGED not in message.body
        for html, _ in message.alternatives:
            assert FORGED not in html


@forged_host
def test_staff_emails_carry_links_on_site_url_whatever_the_host(
    client, book, django_capture_on_commit_callbacks
):
    document = add_document(book.customer, name="contract.pdf")
    work_in(client, book.world.users[Role.ADMIN], book.entity)
    host = {"HTTP_HOST": FORGED}

    with django_capture_on_commit_callbacks(execute=True):
        sent_links = client.post(
            f"/customers/{book.customer.pk}/documents/",
            {"action": "links", "what": "document", "document": document.pk,
             "contact": book.kari.pk, "max_uses": 1},
            **host,
        )  # fmt: skip
        invoices = client.post(
            f"/customers/{book.customer.pk}/documents/",
            {"action": "links", "what": "invoices", "contact": book.kari.pk},
            **host,
        )
        reminder = client.post(
            f"/customers/{book.customer.pk}/reminder/", {"contact": book.kari.pk}, **host
        )
        consent = client.post(f"/customers/contacts/{book.kari.pk}/consent/send-link/", **host)

    assert [r.status_code for r in (sent_links, invoices, reminder, consent)] == [302] * 4
    assert_links_on_site(["links", "links", "reminder", "consent_link"])
    assert len(mail.outbox) == 4


@forged_host
def test_a_fresh_link_asked_for_with_a_forged_host_is_on_site_url(
    book, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW - timedelta(days=100), tick=False):
        _, token = make_link(
            book.customer,
            CustomerLink.Kind.DOCUMENT,
            contact=book.kari,
            document=add_document(book.customer),
        )

    with django_capture_on_commit_callbacks(execute=True):
        response = Client(HTTP_HOST=FORGED).post(url(token, "renew"))

    assert response.status_code == 200
    assert "A new link is on its way" in response.content.decode()
    assert_links_on_site(["link"])
    [message] = mail.outbox
    assert SITE + "/l/" in message.body
