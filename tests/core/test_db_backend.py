"""The PostgreSQL backend's health check (core.postgresql): a connection the server
ended is replaced before a request's first statement, and a healthy one is reused
without asking the server anything."""

import select

import psycopg
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL backend"),
    # Outside the test's transaction, as between two requests in production.
    pytest.mark.django_db(transaction=True),
]


def start_request():
    """What Django does when a request starts (request_started -> close_old_connections),
    which the test client skips."""
    connection.close_if_unusable_or_obsolete()


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def other_connection():
    """A second session on the same database, outside Django."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("prepare_threshold", None)
    return psycopg.connect(**params, autocommit=True)


def terminate(pid):
    """End the session from another connection, as a server restart or an operator's
    pg_terminate_backend would, and wait until its socket says so."""
    with other_connection() as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    readable, _, _ = select.select([connection.connection.fileno()], [], [], 10)
    assert readable, "the server did not end the session within 10 s"


@pytest.fixture
def sent(monkeypatch):
    """The statements psycopg sends from now on (Django's is_usable() bypasses the
    ORM's query log)."""
    sent = []
    real_execute = psycopg.Cursor.execute

    def counting_execute(self, query, *args, **kwargs):
        sent.append(str(query))
        return real_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    return sent


def test_a_connection_the_server_ended_is_replaced_before_the_next_statement(client, sent):
    old = backend_pid()
    terminate(old)
    sent.clear()

    start_request()
    response = client.get("/healthz")

    assert response.status_code == 200
    assert sent[0] == "SELECT 1"  # the socket had news: the server was asked, in vain
    assert backend_pid() != old


def test_a_healthy_connection_is_reused_without_a_round_trip(sent):
    old = backend_pid()
    sent.clear()

    start_request()
    assert connection.is_usable()
    connection.close_if_health_check_failed()

    assert sent == []
    assert backend_pid() == old


def test_after_an_error_the_server_is_still_asked(sent):
    backend_pid()
    connection.errors_occurred = True
    sent.clear()

    start_request()

    assert sent == ["SELECT 1"]
    assert connection.connection is not None and not connection.errors_occurred


def test_a_live_connection_with_something_to_read_is_asked_and_kept(sent):
    """Anything waiting on the socket (here a notification; elsewhere a TLS message) is
    not taken for a closed connection: the server is asked, and the connection stays."""
    old = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("LISTEN guardrail_test")
    with other_connection() as other:
        other.execute("NOTIFY guardrail_test")
    readable, _, _ = select.select([connection.connection.fileno()], [], [], 10)
    assert readable, "the notification did not arrive within 10 s"
    sent.clear()

    start_request()
    connection.close_if_health_check_failed()

    assert sent == ["SELECT 1"]
    assert backend_pid() == old
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")
