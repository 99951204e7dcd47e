"""Database helpers that the ORM has no API for."""

from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def planned_for_their_values():
    """Statements run inside are planned for the values they are given, every time.

    Prepared statements (settings: DATABASE_PREPARE_THRESHOLD) let PostgreSQL reuse one
    generic plan for a statement; that plan cannot know how selective a search's words
    are, and for a name search it walked a whole entity (700 ms instead of 30 ms). In a
    transaction, `SET LOCAL` keeps the setting to these statements only. Nothing to do
    elsewhere (SQLite in development)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield
