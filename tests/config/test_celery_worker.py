"""A real Celery worker on Redis runs a periodic job against the real database.

Needs PostgreSQL and Redis (CI has both); skipped on the embedded SQLite default, where
there is no broker for a worker to listen on.
"""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import UserSession as Session
from accounts.sessions import SessionStore
from config.celery import app
from tests.celery_worker import running_worker

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="needs DATABASE_URL=postgres://... and REDIS_URL",
)


@pytest.fixture
def worker(transactional_db):
    with running_worker() as queue:
        yield queue


# The test settings run tasks eagerly; send_task goes to the broker regardless, on purpose.
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_worker_runs_the_scheduled_session_cleanup(worker):
    expired = SessionStore()
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timedelta(minutes=1)
    )
    live = SessionStore()
    live.create()

    entry = app.conf.beat_schedule["clear-expired-sessions"]
    app.send_task(entry["task"], queue=worker)

    # Wait for another process, bounded: 60 s at most, normally well under 5 s.
    deadline = time.monotonic() + 60
    while Session.objects.filter(pk=expired.session_key).exists():
        assert time.monotonic() < deadline, "the worker did not run the task within 60 s"
        time.sleep(0.2)
    assert Session.objects.filter(pk=live.session_key).exists()
