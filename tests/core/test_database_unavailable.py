"""When the database refuses connections or does not answer, a page is a plain 503 with
Retry-After within seconds: no traceback, no database details, no hang; once the database
answers again, so does the product.

A loopback TCP forwarder stands between the product and the real PostgreSQL; the test
makes it refuse connections, or accept them and never answer, or forward again."""

import socket
import threading
import time

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from accounts.roles import Role
from tests.conftest import PASSWORD, work_in


class Forwarder:
    """127.0.0.1:<port> in front of `target`; mode "forward", "refuse" or "hang"."""

    def __init__(self, target):
        self.target = target
        self.mode = "forward"
        self.port = None
        self.listener = None
        self.held = []
        self._listen()

    def _listen(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.mode == "hang":
                self.held.append(client)  # accepted, never answered
                continue
            server = socket.create_connection(self.target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def _stop_listening(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()

    def set(self, mode):
        if mode == "refuse":
            self._stop_listening()
        elif self.mode == "refuse":
            self._listen()
        self.mode = mode

    def close(self):
        self._stop_listening()
        for sock in self.held:
            sock.close()


def _pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def through_forwarder():
    connection = connections["default"]
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    settings_dict = connection.settings_dict
    saved = settings_dict["HOST"], settings_dict["PORT"]
    forwarder = Forwarder((saved[0] or "127.0.0.1", int(saved[1] or 5432)))
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", forwarder.port
    try:
        yield forwarder
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = saved
        forwarder.set("forward")
        forwarder.close()


def timed_get(client, path):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def assert_friendly_503(response, seconds):
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = response.content.decode()
    assert "Temporarily unavailable" in body
    assert "Traceback" not in body
    assert "OperationalError" not in body
    assert "127.0.0.1" not in body
    assert seconds < 2.5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_a_database_that_refuses_or_hangs_gives_a_503_in_seconds_then_recovers(
    world, through_forwarder, mode
):
    client = Client(raise_request_exception=False)
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    assert client.get("/customers/").status_code == 200

    through_forwarder.set(mode)
    connections["default"].close()  # as after a server restart: the next page connects
    response, seconds = timed_get(client, "/customers/")
    assert_friendly_503(response, seconds)

    through_forwarder.set("forward")
    response, _ = timed_get(client, "/customers/")
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_attempt_while_the_database_is_down_is_refused_not_let_through(
    world, through_forwarder
):
    client = Client(raise_request_exception=False)
    through_forwarder.set("refuse")
    started = time.monotonic()
    response = client.post(
        "/accounts/login/",
        {"username": world.users[Role.CREDIT_MANAGER].email, "password": PASSWORD},
    )
    assert_friendly_503(response, time.monotonic() - started)
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert client.get("/customers/").status_code == 302  # still signed out
