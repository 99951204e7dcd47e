"""Opening a link is not spending it, and its token does not stay in the address bar.

Mail scanners fetch every link of a message (GET and HEAD, with or without keeping
cookies) before its recipient clicks. Neither changes anything: the first GET of a link's
URL exchanges the token for a short link-bound session and redirects to a clean URL; a
document link's page there says what it is and has a Download button, whose POST spends
the use (as the customer's page's actions and the consent page's save do). Also: the
session's cookie (scoped, HttpOnly, SameSite=Lax, 30 minutes, bound to its link and
handle), the form key a POST through it needs, CSRF as browsers post under no-referrer,
the token's own URL as the cookieless way to act, and the private headers of every answer
under the link paths."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tenancy import system_code
from customers import link_session, links
from customers.models import Customer, CustomerLink
from documents import links as document_links
from documents.models import InvoiceAction
from tests.helpers import (
    NOW,
    PDF,
    add_document,
    assert_private,
    body_of,
    choices,
    dead_message,
    fresh,
    make_link,
    pdf_text,
    revoke,
    set_privacy,
    url,
    uses_of,
)

Kind = CustomerLink.Kind
CLEAN = re.compile(r"^/([lc])/open/([A-Za-z0-9_-]{16})/$")


def text(response):
    return response.content.decode()


def open_link(client, path):
    """What a browser does with the link in an email: the GET of its URL, then the page it
    is sent to. Returns (the first answer, the page)."""
    first = client.get(path)
    assert first.status_code == 302, first.status_code
    assert CLEAN.match(first["Location"]), first["Location"]
    return first, client.get(first["Location"])


def key_of(page):
    return re.search(r'name="key" value="([0-9a-f]+)"', text(page)).group(1)


def document_link(book, **fields):
    document = add_document(book.customer, name="contract.pdf")
    link, token = make_link(
        book.customer, Kind.DOCUMENT, contact=book.kari, document=document, **fields
    )
    return link, token


def link_of(book, kind, **fields):
    if kind == Kind.DOCUMENT:
        return document_link(book, **fields)
    extra = {"invoice": book.open1} if kind == Kind.INVOICE_PDF else {}
    return make_link(book.customer, kind, contact=book.kari, **extra, **fields)


# --- Opening spends nothing ------------------------------------------------------------------


@pytest.mark.parametrize("kind", [Kind.DOCUMENT, Kind.INVOICE_PDF])
def test_mail_scanners_leave_a_one_use_link_for_its_recipient(client, book, kind):
    link, token = link_of(book, kind, max_uses=1)

    # Scanners: HEAD, a GET that follows the redirect with its cookie, a GET without.
    for _ in range(2):
        assert Client().head(url(token)).status_code == 200
        followed = Client().get(url(token), follow=True)
        assert followed.status_code == 200
        assert b"%PDF" not in followed.content
        first = Client().get(url(token))
        assert Client().get(first["Location"]).status_code == 410  # no cookie, no page

    assert fresh(link).uses == 0
    # Each GET of the link's URL is logged as an opening that spends nothing.
    assert [use.counted for use in uses_of(link)] == [False] * 4

    # The recipient: the page says what the link is; its button spends the one use.
    _, page = open_link(client, url(token))
    assert page.status_code == 200
    assert_private(page)
    content = text(page)
    assert "Acme Norge AS" in content
    assert ("contract.pdf" if kind == Kind.DOCUMENT else "Invoice F-1001") in content
    assert "This link allows 1 more download." in content
    assert fresh(link).uses == 0

    download = client.post(page.wsgi_request.path, {"key": key_of(page)})

    assert download.status_code == 200
    assert_private(download)
    assert download["Content-Disposition"].startswith("attachment;")
    if kind == Kind.DOCUMENT:
        assert body_of(download) == PDF
    else:
        assert "Invoice F-1001 (copy)" in pdf_text(body_of(download))
    assert fresh(link).uses == 1
    assert [use.counted for use in uses_of(link)] == [False] * 5 + [True]
    # Spent: the page and a checker now say so, and nothing more is counted.
    again = client.get(page.wsgi_request.path)
    assert again.status_code == 410
    assert dead_message(again) == "This link has been used as many times as it allows."
    assert Client().head(url(token)).status_code == 410
    assert fresh(link).uses == 1


def test_reloading_the_page_logs_nothing_more(client, book):
    link, token = document_link(book)
    first, _ = open_link(client, url(token))
    for _ in range(3):
        assert client.get(first["Location"]).status_code == 200
        assert client.head(first["Location"]).status_code == 200
    assert len(uses_of(link)) == 1
    assert fresh(link).uses == 0


# --- The token leaves the URL ----------------------------------------------------------------


def test_the_first_get_exchanges_the_token_for_a_link_bound_session(client, book):
    link, token = document_link(book)

    first = client.get(url(token))

    assert first.status_code == 302
    assert_private(first)
    location = first["Location"]
    _, handle = CLEAN.match(location).groups()
    assert token not in location and token[:8] not in location
    [(name, cookie)] = first.cookies.items()
    assert name == f"link-{handle}"
    assert cookie["path"] == location
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == 1800
    assert token not in cookie.value and link.token_hash not in cookie.value

    page = client.get(location)
    assert page.status_code == 200
    assert token not in text(page)
    assert f'<form method="post" action="{location}">' in text(page)
    # No other cookie: no Django session, no CSRF cookie for a customer.
    assert set(client.cookies) == {name}


def test_the_session_lasts_30_minutes(client, book):
    link, token = document_link(book)
    with time_machine.travel(NOW, tick=False):
        first, page = open_link(client, url(token))
        key = key_of(page)
    location = first["Location"]

    with time_machine.travel(NOW + timedelta(minutes=29), tick=False):
        assert client.get(location).status_code == 200
    with time_machine.travel(NOW + timedelta(minutes=31), tick=False):
        expired = client.get(location)
        posted = client.post(location, {"key": key})

    for response in (expired, posted):
        assert response.status_code == 410
        assert_private(response)
        assert dead_message(response) == "This page has expired."
        assert "Open the link in your email again" in text(response)
        assert "contract.pdf" not in text(response)
    assert fresh(link).uses == 0
    # The link itself still works: opening it again starts a new session.
    with time_machine.travel(NOW + timedelta(minutes=31), tick=False):
        _, page = open_link(client, url(token))
        assert client.post(page.wsgi_request.path, {"key": key_of(page)}).status_code == 200


def test_a_session_ends_with_its_link(client, book):
    link, token = document_link(book)
    first, page = open_link(client, url(token))

    revoke(link)

    assert dead_message(client.get(first["Location"])) == "This link was withdrawn."
    assert client.post(first["Location"], {"key": key_of(page)}).status_code == 410
    assert fresh(link).uses == 0


def test_a_session_opens_only_its_own_link(client, book):
    _, token_a = document_link(book)
    other = add_document(book.customer, name="other-contract.pdf")
    _, token_b = make_link(book.customer, Kind.DOCUMENT, contact=book.kari, document=other)
    # Two links open in two tabs keep a session each.
    first_a, page_a = open_link(client, url(token_a))
    first_b, page_b = open_link(client, url(token_b))
    assert "other-contract.pdf" not in text(client.get(first_a["Location"]))
    assert "other-contract.pdf" in text(client.get(first_b["Location"]))
    name_a = f"link-{CLEAN.match(first_a['Location']).group(2)}"
    name_b = f"link-{CLEAN.match(first_b['Location']).group(2)}"

    # A's cookie moved under B's name, a tampered one, and none at all open nothing.
    moved = Client()
    moved.cookies[name_b] = client.cookies[name_a].value
    tampered = Client()
    value = client.cookies[name_b].value
    tampered.cookies[name_b] = value[:-1] + ("A" if value[-1] != "A" else "B")
    for visitor in (moved, tampered, Client()):
        answer = visitor.get(first_b["Location"])
        assert answer.status_code == 410
        assert dead_message(answer) == "This page has expired."
        assert "contract.pdf" not in text(answer)
    # A made-up handle is no page either.
    assert Client().get("/l/open/AAAAAAAAAAAAAAAA/").status_code == 410


def test_a_post_through_the_session_needs_its_pages_form_key(client, book):
    link, token = document_link(book)
    first, page = open_link(client, url(token))
    _, other_page = open_link(Client(), url(document_link(book)[1]))

    for data in ({}, {"key": "0" * 64}, {"key": key_of(other_page)}):
        refused = client.post(first["Location"], data)
        assert refused.status_code == 403
        assert_private(refused)
        assert dead_message(refused) == "This form has expired."
    assert fresh(link).uses == 0

    assert client.post(first["Location"], {"key": key_of(page)}).status_code == 200
    assert fresh(link).uses == 1


@pytest.mark.parametrize("origin", [None, "null", "http://testserver"])
def test_the_download_button_works_as_browsers_post_under_no_referrer(book, origin):
    """Pages sent with no-referrer make browsers post `Origin: null`; the customer has no
    CSRF cookie. The session and the form key are the credential."""
    browser = Client(enforce_csrf_checks=True)
    link, token = document_link(book)
    first, page = open_link(browser, url(token))
    extra = {} if origin is None else {"HTTP_ORIGIN": origin}

    response = browser.post(first["Location"], {"key": key_of(page)}, **extra)

    assert response.status_code == 200
    assert body_of(response) == PDF
    assert fresh(link).uses == 1


def test_a_post_to_the_tokens_own_url_acts_without_a_session(book):
    """A client that keeps no cookies: the token in the URL is its credential."""
    link, token = document_link(book)

    response = Client(enforce_csrf_checks=True).post(url(token), HTTP_ORIGIN="null")

    assert response.status_code == 200
    assert body_of(response) == PDF
    assert fresh(link).uses == 1


on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL serves a document link with one statement; elsewhere the full path does",
)


@on_postgres
def test_the_download_button_is_one_statement(client, book, django_assert_num_queries):
    link, token = document_link(book)
    first, page = open_link(client, url(token))
    key = key_of(page)

    with django_assert_num_queries(1):
        response = client.post(first["Location"], {"key": key}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 200
    assert body_of(response) == PDF
    assert fresh(link).uses == 1
    assert [(u.counted, u.ip) for u in uses_of(link)][-1] == (True, "203.0.113.7")


def anonymise_customer(book, link):
    with system_code():
        Customer.objects.filter(pk=link.customer_id).update(anonymised_at=NOW)


def use_up(book, link):
    with system_code():
        CustomerLink.objects.filter(pk=link.pk).update(max_uses=1, uses=1)


SESSION_STATES = [
    ("usable", lambda book, link: None, timedelta(0)),
    ("withdrawn", lambda book, link: revoke(link), timedelta(0)),
    ("used-up", use_up, timedelta(0)),
    ("anonymised", anonymise_customer, timedelta(0)),
    ("expired", lambda book, link: None, timedelta(days=90)),
]


@on_postgres
@pytest.mark.parametrize(
    ("breaks", "age"), [s[1:] for s in SESSION_STATES], ids=[s[0] for s in SESSION_STATES]
)
def test_the_session_download_statement_agrees_with_problem_with(book, breaks, age):
    with time_machine.travel(NOW, tick=False):
        link, token = document_link(book)
    breaks(book, link)
    uses_before = fresh(link).uses

    usable = links.problem_with(links.find(token), NOW + age) is None
    taken = document_links.take_session_download(
        link.pk, ip="192.0.2.1", user_agent="Agent", now=NOW + age
    )

    assert (taken is not None) == usable
    assert fresh(link).uses == uses_before + usable
    assert len(uses_of(link)) == usable
    # Another kind of link, or no session, is left to the full path.
    _, pdf_token = make_link(book.customer, Kind.INVOICE_PDF, invoice=book.open1)
    pdf_link = links.find(pdf_token)
    assert (
        document_links.take_session_download(pdf_link.pk, ip=None, user_agent=None, now=NOW) is None
    )
    assert document_links.take_session_download(None, ip=None, user_agent=None, now=NOW) is None


# --- The customer's page and the consent page ------------------------------------------------


def test_the_customers_page_spends_a_use_only_on_its_actions(client, book):
    link, token = make_link(book.customer, Kind.INTERACTIVE, contact=book.kari)
    first, page = open_link(client, url(token))
    location = first["Location"]
    assert "Open invoices for Fjellvik Transport AS" in text(page)
    assert token not in text(page)
    key = key_of(page)
    pdf = f"{location}invoices/{book.open1.pk}/pdf/"
    assert f'action="{pdf}"' in text(page)

    # GET and HEAD of the PDF's address change nothing; its button (a POST) downloads.
    assert client.get(pdf)["Location"] == location
    assert client.head(pdf).status_code == 200
    assert fresh(link).uses == 0
    downloaded = client.post(pdf, {"key": key})
    assert downloaded.status_code == 200
    assert "Invoice F-1001 (copy)" in pdf_text(downloaded.content)
    assert client.post(pdf, {}).status_code == 403
    assert fresh(link).uses == 1

    day = (timezone.localdate() + timedelta(days=30)).isoformat()
    promise = client.post(
        location,
        {"key": key, "action": "promise", "invoice_id": book.open1.pk,
         f"p{book.open1.pk}-invoice": book.open1.pk, f"p{book.open1.pk}-promised_on": day},
    )  # fmt: skip
    assert promise.status_code == 302
    assert promise["Location"] == location
    assert_private(promise)
    assert fresh(link).uses == 2
    with system_code():
        assert InvoiceAction.objects.filter(link=link, kind="promise").count() == 1
    assert f"You promised to pay by {day}." in text(client.get(location))
    assert fresh(link).uses == 2
    assert [use.counted for use in uses_of(link)] == [False, True, True]


def test_opening_a_consent_link_spends_nothing_and_saving_spends_a_use(world, client, book):
    set_privacy(world.a, version="v1")
    link, token = make_link(book.customer, Kind.CONSENT, contact=book.kari, max_uses=1)

    for path in (f"/c/{token}/", url(token)):  # its own address, and the documents' one
        assert Client().head(path).status_code == 200
        first, page = open_link(client, path)
        kind, handle = CLEAN.match(first["Location"]).groups()
        assert kind == "c"
        assert first.cookies[f"link-{handle}"]["path"] == first["Location"]
        assert "How may Acme Norge AS contact you?" in text(page)
        assert token not in text(page)
    assert fresh(link).uses == 0
    assert [use.counted for use in uses_of(link)] == [False, False]

    saved = client.post(
        first["Location"],
        {"key": key_of(page), "policy_version": "v1",
         **choices(world.a, "Newsletter", contact=book.kari)},
    )  # fmt: skip
    assert saved.status_code == 200
    assert "Your choices were saved. Thank you." in text(saved)
    assert fresh(link).uses == 1
    refused = client.post(first["Location"], {"policy_version": "v1"})
    assert refused.status_code == 410  # used up (and the key was missing too)


def test_a_consent_page_post_through_the_session_needs_its_form_key(world, client, book):
    set_privacy(world.a, version="v1")
    link, token = make_link(book.customer, Kind.CONSENT, contact=book.kari)
    first, _ = open_link(client, f"/c/{token}/")

    refused = client.post(
        first["Location"],
        {"key": "f" * 64, "policy_version": "v1",
         **choices(world.a, "Newsletter", contact=book.kari)},
    )  # fmt: skip

    assert refused.status_code == 403
    assert_private(refused)
    assert fresh(link).uses == 0
    # A document link's session does not open a consent page, nor the reverse.
    doc_first, _ = open_link(client, url(document_link(book)[1]))
    handle = CLEAN.match(doc_first["Location"]).group(2)
    assert client.get(f"/c/open/{handle}/").status_code == 410
    consent_handle = CLEAN.match(first["Location"]).group(2)
    assert client.get(f"/l/open/{consent_handle}/").status_code == 410


# --- A fresh link from the clean page --------------------------------------------------------


def test_an_expired_link_offers_a_fresh_one_from_its_clean_page(
    client, book, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW - timedelta(days=100), tick=False):
        _, token = document_link(book)

    first, dead = open_link(client, url(token))

    assert dead.status_code == 410
    assert dead_message(dead) == "This link has expired."
    renew = f"{first['Location']}renew/"
    assert f'action="{renew}"' in text(dead)
    assert token not in text(dead)
    assert client.post(renew, {}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(renew, {"key": key_of(dead)})
    assert sent.status_code == 200
    assert "A new link is on its way" in text(sent)
    assert [m.to for m in mail.outbox] == [["kari@fjellvik.example"]]
    assert client.get(renew)["Location"] == first["Location"]


# --- Private answers -------------------------------------------------------------------------


def test_every_answer_under_the_link_paths_is_private(client, book):
    _, token = document_link(book)
    _, consent_token = make_link(book.customer, Kind.CONSENT, contact=book.kari)
    with time_machine.travel(NOW - timedelta(days=100), tick=False):
        _, expired = document_link(book)
    client.post(url(expired, "renew"))  # a fresh link was just sent: the next ask is 429
    first = client.get(url(token))

    answers = {
        "exchange": first,
        "consent exchange": client.get(f"/c/{consent_token}/"),
        "page": client.get(first["Location"]),
        "no session": Client().get(first["Location"]),
        "no form key": client.post(first["Location"]),
        "unknown route": client.get(url(token, "nothing-here")),
        "unknown consent route": client.get(f"/c/{consent_token}/x/"),
        "no slash": client.get(f"/l/{token}"),
        "method": client.put(url(token)),
        "unknown token": client.get(url("made-up-token")),
        "too soon": client.post(url(expired, "renew")),
    }

    assert {name: r.status_code for name, r in answers.items()} == {
        "exchange": 302,
        "consent exchange": 302,
        "page": 200,
        "no session": 410,
        "no form key": 403,
        "unknown route": 404,
        "unknown consent route": 404,
        "no slash": 301,
        "method": 405,
        "unknown token": 410,
        "too soon": 429,
    }
    for name, response in answers.items():
        assert response["Cache-Control"] == "no-store", name
        assert response["Referrer-Policy"] == "no-referrer", name
        assert response["X-Robots-Tag"] == "noindex", name
    # Staff pages keep the product's own policy.
    assert client.get("/accounts/login/")["Referrer-Policy"] == "same-origin"


def test_the_session_cookie_is_secure_where_the_session_cookie_is(book, settings):
    settings.SESSION_COOKIE_SECURE = True
    _, token = document_link(book)

    first = Client().get(url(token), secure=True)

    handle = CLEAN.match(first["Location"]).group(2)
    cookie = first.cookies[f"__Secure-link-{handle}"]
    assert cookie["secure"] is True
    assert link_session.cookie_name(handle) == f"__Secure-link-{handle}"
