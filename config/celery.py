"""The Celery application and the one beat schedule of periodic jobs.

Every periodic job is listed here and nowhere else; `manage.py run_periodic_jobs` runs each
of them once, in-process, for cron-style use and tests.
"""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=15),
    },
    "deactivate-inactive-users": {
        "task": "security.tasks.deactivate_inactive_users",
        "schedule": crontab(hour=2, minute=0),
    },
    "warn-inactive-users": {
        "task": "security.tasks.warn_inactive_users",
        "schedule": crontab(hour=7, minute=0),
    },
    "remind-expiring-passwords": {
        "task": "security.tasks.remind_expiring_passwords",
        "schedule": crontab(hour=7, minute=5),
    },
    "requeue-stale-emails": {
        "task": "core.tasks.requeue_stale_emails",
        "schedule": crontab(minute="*/10"),
    },
    "purge-old-links": {
        "task": "documents.tasks.purge_old_links",
        "schedule": crontab(hour=4, minute=0),
    },
    "purge-login-throttles": {
        "task": "security.tasks.purge_login_throttles",
        "schedule": crontab(minute=30),
    },
}
