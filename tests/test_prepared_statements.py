"""PostgreSQL: statements a connection runs again are prepared (planned once)."""

import pytest
from django.db import connection

from accounts.models import User

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)


def prepared_statements_on(table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [f'%"{table}"%'],
        )
        return cursor.fetchone()[0]


def test_a_statement_run_again_is_prepared_on_its_connection(db):
    before = prepared_statements_on("accounts_user")
    for pk in range(1, 8):
        # A statement no other test runs: it is prepared by this loop or not at all.
        list(User.objects.filter(pk=pk, full_name="prepared?").values_list("email", flat=True))
    assert prepared_statements_on("accounts_user") == before + 1
