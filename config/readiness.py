"""Readiness: can this web process serve requests right now (GET /readyz)?

Database, cache, broker, media volume writable, migrations applied, static files collected.

Each check answers within about TIMEOUT seconds and names only what failed, never why in
detail (no hosts, passwords or tracebacks reach the answer; the log gets the error's class).
"""

import logging
import os
import tempfile
import time

import redis
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.cache import cache
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from kombu import Connection

logger = logging.getLogger(__name__)

TIMEOUT = 1.0  # seconds, per check
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_database():
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL statement_timeout = {int(TIMEOUT * 1000)}")
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _ping_redis(url):
    client = redis.Redis.from_url(
        url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry_on_timeout=False
    )
    try:
        if not client.ping():
            raise ConnectionError("no PONG")
    finally:
        client.close()


def check_cache():
    options = settings.CACHES["default"]
    location = options.get("LOCATION", "")
    if isinstance(location, list | tuple):
        location = location[0] if location else ""
    if str(location).startswith(REDIS_SCHEMES):
        # A client of its own with socket timeouts: the cache's pool waits for ever.
        _ping_redis(str(location))
        return
    key = "readyz:probe"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise ConnectionError("the cache did not keep a value")


def check_broker():
    url = settings.CELERY_BROKER_URL or ""
    if url.startswith("memory://"):
        return  # development: tasks run in-process
    if url.startswith(REDIS_SCHEMES):
        _ping_redis(url)
        return
    with Connection(url, connect_timeout=TIMEOUT) as broker:
        broker.ensure_connection(max_retries=1, timeout=TIMEOUT)


def check_media():
    """Uploads can be written: a file created and removed in MEDIA_ROOT (the volume)."""
    root = os.fspath(settings.MEDIA_ROOT)
    os.makedirs(root, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-") as probe:
        probe.write(b"ok")
        probe.flush()


def check_migrations():
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RuntimeError("unapplied migrations")


def check_static():
    """With DEBUG off, collectstatic has run: pages reference hashed files that exist."""
    is_collected = getattr(staticfiles_storage, "is_collected", None)
    if is_collected is not None and not is_collected():
        raise FileNotFoundError("no staticfiles manifest: run collectstatic")


CHECKS = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "media": check_media,
    "migrations": check_migrations,
    "static": check_static,
}


def run_checks():
    """{name: "ok" | "failed"}, every check run (each bounded by TIMEOUT)."""
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as error:  # any failure means "not ready", never a 500
            logger.warning(
                "readiness check %s failed after %.2fs: %s",
                name,
                time.monotonic() - started,
                error.__class__.__name__,
            )
            results[name] = "failed"
        else:
            results[name] = "ok"
    return results
