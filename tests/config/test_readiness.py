"""/readyz: can the web process serve? /healthz: is it alive? What a proxy or compose sees."""

import time

import pytest
from django.db import OperationalError, connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
CHECKS = {"database", "cache", "broker", "media", "migrations", "static"}


@pytest.fixture(autouse=True)
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def redis_down():
    return override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": CLOSED_REDIS,
            }
        },
        CELERY_BROKER_URL=CLOSED_REDIS,
    )


def test_ready_answers_200_with_every_check_ok(db, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")}
    assert "no-cache" in response["Cache-Control"]


def test_ready_answers_503_naming_cache_and_broker_when_redis_is_unreachable(db, client):
    started = time.monotonic()
    with redis_down():
        response = client.get("/readyz")
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"] == "failed"
    assert body["checks"]["broker"] == "failed"
    assert body["checks"]["database"] == "ok"
    assert "127.0.0.1" not in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_alive_stays_200_while_redis_is_down(db, client):
    with redis_down():
        response = client.get("/healthz")
    assert response.status_code == 200


def test_ready_answers_503_naming_media_when_uploads_cannot_be_written(db, client, tmp_path):
    # The tests run as root, for whom a read-only mode bit is no obstacle: a regular file
    # where the media directory should be cannot take uploads either.
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    with override_settings(MEDIA_ROOT=blocked):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {**dict.fromkeys(CHECKS, "ok"), "media": "failed"}
    assert str(tmp_path) not in response.content.decode()


def test_ready_answers_503_naming_migrations_when_one_is_not_applied(db, client):
    # The newest security migration forgotten by the database (rolled back after the test).
    recorder = MigrationRecorder.Migration.objects
    newest = recorder.filter(app="security").order_by("-name").first()
    recorder.filter(pk=newest.pk).delete()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        **dict.fromkeys(CHECKS, "ok"),
        "migrations": "failed",
    }


def test_ready_answers_503_naming_database_when_it_does_not_answer(db, client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection to server at 10.0.0.5 failed: password secret")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/readyz")
    monkeypatch.undo()
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed"
    assert "10.0.0.5" not in response.content.decode()
    assert "secret" not in response.content.decode()


@override_settings(
    ALLOWED_HOSTS=["guardrail.example.com"],
    SECURE_SSL_REDIRECT=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)
def test_ready_answers_the_healthcheck_presenting_itself_as_the_tls_proxy(db, client):
    response = client.get(
        "/readyz", HTTP_HOST="guardrail.example.com", HTTP_X_FORWARDED_PROTO="https"
    )
    assert response.status_code == 200
