"""What a customer link answers: the document under a safe file name (downloaded by a POST:
a GET only opens the link's page, tests/documents/test_link_landing.py), private headers on
every answer, max uses (also under concurrent requests), a link checker's HEAD request
spending no use, the one-statement download on PostgreSQL (answering as the full path
does and agreeing with links.problem_with() on every rule), tampered and hashed tokens,
and the use log."""

import hashlib
import re
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tenancy import system_code
from customers import links
from customers.models import Customer, CustomerLink, LinkUse
from documents import links as document_links
from documents.models import Document, InvoiceAction
from security.models import AuditEvent, SecurityPolicy
from tests.helpers import (
    NOW,
    PDF,
    Book,
    add_document,
    assert_private,
    body_of,
    dead_message,
    fresh,
    link_of_kind,
    make_link,
    revoke,
    set_days,
    url,
    uses_of,
)

NASTY_NAME = '../../x"; rm -rf.pdf'


# --- Document links --------------------------------------------------------------------------


def test_a_document_link_downloads_the_file_under_a_safe_name(client, book):
    document = add_document(book.customer, name=NASTY_NAME)
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=document
    )

    response = client.post(url(token))

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

    response = client.post(url(token))

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
        "file": client.post(url(doc_token)),
        "invoice pdf": client.post(url(pdf_token)),
        "page": client.get(url(page_token), follow=True),
        "page pdf": client.post(url(page_token, "invoices", book.open1.pk, "pdf")),
        "invalid page": client.get(url("nonsense")),
        "invalid pdf": client.get(url("nonsense", "invoices", book.open1.pk, "pdf")),
        "withdrawn": client.get(url(revoked_token), follow=True),
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


# --- Max uses --------------------------------------------------------------------------------


def test_max_uses_refuses_the_next_use(client, book):
    document = add_document(book.customer)
    link, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, document=document, max_uses=2
    )

    assert [client.post(url(token)).status_code for _ in range(2)] == [200, 200]
    third = client.post(url(token))

    assert third.status_code == 410
    assert_private(third)
    assert dead_message(third) == "This link has been used as many times as it allows."
    assert PDF not in third.content
    assert fresh(link).uses == 2
    assert len(uses_of(link)) == 2


def test_max_uses_counts_page_actions_and_pdfs_not_page_views(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, max_uses=1)

    for _ in range(3):
        assert client.get(url(token), follow=True).status_code == 200
    assert client.post(url(token, "invoices", book.open1.pk, "pdf")).status_code == 200

    assert fresh(link).uses == 1
    assert client.get(url(token), follow=True).status_code == 410
    assert client.post(url(token, "invoices", book.open1.pk, "pdf")).status_code == 410


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
            response = Client().post(url(token))
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
            assert client.get(path, follow=True).status_code == 200
        assert fresh(link).uses == 0
        assert [use.counted for use in uses_of(link)] == [False, False]
        pdf = f"/l/{token}/invoices/{book.open1.pk}/pdf/"
        assert client.head(pdf).status_code == 200
        assert client.post(pdf).status_code == 200  # a download spends the one use
        assert client.head(pdf).status_code == 410
    else:
        # The customer's click (the download, the saved form) still works
        assert client.post(path).status_code == 200
        assert client.head(path).status_code == 410  # and afterwards it says it is spent
    assert fresh(link).uses == 1


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
        response = client.post(url(token), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="x" * 500)

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

    fast = client.post(url(token))
    fast_body = body_of(fast)  # before the next open: the test storage shares one file object
    monkeypatch.setattr(document_links, "take_download", lambda token, **kwargs: None)
    full = client.post(url(token))

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
        response = client.post(url(token))

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
        response = client.post(url(token))

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
        assert client.post(url(token)).status_code == 200
    with time_machine.travel(limit, tick=False):
        expired = client.post(url(token))

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
        client.post(url(token), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140")
    client.post(url(token), REMOTE_ADDR="2001:db8::1", HTTP_USER_AGENT="x" * 500)

    older, newer = uses_of(link)
    assert (older.ip, older.user_agent, older.used_at) == ("203.0.113.7", "Firefox/140", NOW)
    assert (newer.ip, newer.user_agent) == ("2001:db8::1", "x" * 300)
    assert older.entity == book.entity
    assert fresh(link).uses == 2
