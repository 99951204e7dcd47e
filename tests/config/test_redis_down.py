"""Redis down: the product degrades, never a 500 or a hang. The customer list reads its
collector filter from the database, a reminder stays queued in the outbox ("on its way")
and goes out once the broker is back, password sign-ins work (their counters live in
PostgreSQL) and no SMS code is sent (the caps fail closed), each answered within about a
second. The broker and the cache live in separate Redis databases."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from accounts.tenancy import system_code
from config.celery import app
from core import tasks as outbox_tasks
from documents.models import OutgoingEmail
from security.models import AllowedNetwork, SecurityPolicy
from tests.conftest import PASSWORD, work_in
from tests.helpers import Book, text

ROOT = Path(__file__).resolve().parents[2]
# A dead Redis may cost a request about a second, never more.
FAST = 2.0
UNAVAILABLE = (
    "Text messages cannot be sent right now. Try again later or contact your administrator."
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this test alone, on a free port, stopped and started at will."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    def url(self, db):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None


@pytest.fixture
def own_redis():
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def product_on(server):
    """The cache (db 1) and the Celery broker (db 0, tasks not eager) on `server`, with the
    timeouts of the real settings."""
    cache = dict(settings.CACHES["default"], LOCATION=server.url(1))
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.broker_url = server.url(0)
    app.conf.task_always_eager = False
    fresh_broker_connections()
    try:
        with override_settings(CACHES={"default": cache}):
            yield
    finally:
        app.conf.update(saved)
        fresh_broker_connections()


def fresh_broker_connections():
    app._pool = None
    app.amqp._producer_pool = None


def timed(call, *args, **kwargs):
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - started


# --- Settings ---------------------------------------------------------------------------


def test_the_cache_and_the_broker_give_up_on_a_dead_redis_within_half_a_second():
    options = settings.CACHES["default"].get("OPTIONS", {})
    if settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        assert options["socket_connect_timeout"] <= 0.5
        assert options["socket_timeout"] <= 0.5
    assert app.conf.broker_connection_timeout <= 0.5
    assert app.conf.broker_transport_options["socket_connect_timeout"] <= 0.5
    assert app.conf.task_publish_retry is False


def settings_with(**env):
    """CACHES' location and the broker URL of config.settings imported in a fresh process
    with `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_"))}
    base.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    probe = (
        "from django.conf import settings as s\n"
        "print(s.CACHES['default']['LOCATION'], s.CELERY_BROKER_URL)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=base, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_cache_and_the_broker_use_separate_redis_databases():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app-env"]
    broker, cache = compose["REDIS_URL"], compose["REDIS_CACHE_URL"]
    assert urlsplit(broker).netloc == urlsplit(cache).netloc
    assert urlsplit(broker).path != urlsplit(cache).path  # another Redis database
    assert settings_with(REDIS_URL=broker, REDIS_CACHE_URL=cache) == [cache, broker]


# --- Redis down -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_customer_list_answers_from_the_database_when_redis_is_down(world, own_redis):
    book = Book(world)  # a customer collected by the collector
    collector = world.users[Role.COLLECTOR]
    client = Client()
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    with product_on(own_redis):
        assert client.get("/customers/").status_code == 200  # fills the cache
        own_redis.stop()
        response, took = timed(client.get, "/customers/")
    assert response.status_code == 200
    assert took < FAST, took
    assert book.customer.name in text(response)
    assert f'<option value="{collector.pk}"' in text(response)  # the collector filter


@pytest.mark.django_db(transaction=True)
def test_a_reminder_waits_in_the_outbox_while_redis_is_down_and_goes_out_after(
    world, own_redis, mailoutbox
):
    book = Book(world, ola_and_per=True, stranger=False, kari_consents=True)
    client = Client()
    book.editor(client)
    with product_on(own_redis):
        own_redis.stop()
        response, took = timed(
            client.post,
            f"/customers/{book.customer.pk}/reminder/",
            {"contact": book.kari.pk},
            follow=True,
        )
        assert took < FAST, took
        assert response.status_code == 200
        assert response.redirect_chain[-1][0] == f"/customers/{book.customer.pk}/documents/"
        assert f"The reminder to {book.kari.email} is on its way." in text(response)
        with system_code():
            [row] = OutgoingEmail.objects.all()
        assert row.status == OutgoingEmail.Status.QUEUED
        assert mailoutbox == []

        # The broker is down at the requeue job's run too: nothing is handed over.
        later = timezone.now() + timedelta(minutes=11)
        handed, took = timed(outbox_tasks.requeue_stale, now=later)
        assert handed == 0 and took < FAST

        own_redis.start()
        fresh_broker_connections()
        assert outbox_tasks.requeue_stale(now=later) == 1
        queued = redis.Redis.from_url(own_redis.url(0)).llen("celery")
    assert queued == 1  # handed to the worker over the broker
    with system_code():
        assert OutgoingEmail.objects.get(pk=row.pk).status == OutgoingEmail.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_a_password_sign_in_works_while_redis_is_down(world, own_redis):
    user = world.users[Role.CREDIT_MANAGER]
    client = Client()
    with product_on(own_redis):
        own_redis.stop()
        response, took = timed(
            client.post, "/accounts/login/", {"username": user.email, "password": PASSWORD}
        )
    assert response.status_code == 302
    assert took < FAST, took
    assert "_auth_user_id" in client.session


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_needing_a_code_says_codes_cannot_be_sent_while_redis_is_down(
    world, own_redis, fake_twilio
):
    user = world.users[Role.GUEST]
    User.objects.filter(pk=user.pk).update(phone="+4791234567")
    policy = SecurityPolicy.objects.create(
        entity=world.a, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    AllowedNetwork.objects.create(policy=policy, network="10.0.0.0/8", label="Office")
    client = Client(REMOTE_ADDR="203.0.113.5")
    with product_on(own_redis), override_settings(**fake_twilio.settings()):
        own_redis.stop()
        started = time.perf_counter()
        client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
        page = client.get("/account/verify-address/", follow=True)
        took = time.perf_counter() - started
    assert page.status_code == 200
    assert UNAVAILABLE in text(page)
    assert fake_twilio.requests == []
    assert took < FAST, took
