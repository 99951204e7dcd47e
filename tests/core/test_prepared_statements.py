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


def test_a_search_that_reads_the_customers_table_is_planned_for_its_words(world, client):
    """A search with a digit, or sorted by balance, reads customers through the full-text
    and pattern indexes; a prepared statement's generic plan cannot know how many
    customers a word matches (one such plan walked a whole entity), so these statements
    run with custom plans only."""
    from accounts.roles import Role
    from accounts.tenancy import system_code
    from customers.models import Customer
    from tests.conftest import work_in

    with system_code():
        Customer.objects.create(entity=world.a, number="4711", name="Berg AS")
    credit = work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    modes = []

    def note_plan_mode(execute, sql, params, many, context):
        if sql.startswith("SELECT") and '"customers_customer"' in sql:
            with context["connection"].connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('plan_cache_mode')")
                modes.append(cursor.fetchone()[0])
        return execute(sql, params, many, context)

    for params in ({"q": "47"}, {"q": "berg", "sort": "-balance"}):
        for _ in range(7):  # past the threshold: the statements are prepared by now
            with connection.execute_wrapper(note_plan_mode):
                response = credit.get("/customers/", params)
            assert response.status_code == 200
            assert "Berg AS" in response.content.decode()
    assert modes and set(modes) == {"force_custom_plan"}
