"""The customer search by name on PostgreSQL, read from the words table
(`customers.models.CustomerNameWord`, kept by the trigger of customers migration 0005):
what a user finds after customers are created, imported, renamed, moved to another
collector, deleted or anonymised; the role scope and the collector filter; the pages and
the capped count; a fixed number of queries; and the index-only plan.

SQLite has no words table to keep (the search there uses its fallback), so these tests
run on PostgreSQL only; tests/customers/test_customer_list.py covers the search on both."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent import anonymisation
from customers.models import Customer, CustomerAssignment, CustomerNameWord
from security.models import SecurityPolicy
from tests.conftest import make_user, work_in
from tests.helpers import confirm_import, csv_bytes, upload_csv

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the words table is kept by a PostgreSQL trigger (customers migration 0005)",
)


def make(entity, number, name, **fields):
    with system_code():
        return Customer.objects.create(entity=entity, number=number, name=name, **fields)


def page_text(client, **params):
    response = client.get("/customers/", params)
    assert response.status_code == 200
    return response.content.decode()


def found(client, q, **params):
    """The customer names on the first result page, in the order shown."""
    return re.findall(r'<a href="/customers/\d+/">([^<]*)</a>', page_text(client, q=q, **params))


def next_link(text):
    match = re.search(r'<a href="\?([^"]*)" rel="next">Next</a>', text)
    return match and match.group(1).replace("&amp;", "&")


@pytest.fixture
def credit(world, client):
    return work_in(client, world.users[Role.CREDIT_MANAGER], world.a)


def restrict(entity, *roles):
    SecurityPolicy.objects.update_or_create(entity=entity, defaults={"restricted_roles": roles})


def test_the_names_rows_are_linked_as_the_search_expects(world, credit):
    # The helper above reads names from the row links; make sure that is what a row is.
    make(world.a, "1", "Havbris AS")
    assert found(credit, "havbris") == ["Havbris AS"]


def test_words_are_those_of_the_full_text_search(world):
    customer = make(world.a, "1", "Sør-Vest Sol og Strand AS")
    with system_code():
        words = set(
            CustomerNameWord.objects.filter(customer=customer).values_list("word", flat=True)
        )
    assert words == {"sør-vest", "sør", "vest", "sol", "og", "strand", "as"}


def test_a_search_finds_the_start_of_any_word_and_every_word_searched(world, credit):
    for number, name in enumerate(
        ["Solberg Transport AS", "Nye Sol AS", "Consolidated Freight AB", "Fjell-Sol Bygg AS"]
    ):
        make(world.a, str(number), name)
    make(world.b, "9", "Solberg Transport AS")  # another entity's: never found in a

    assert found(credit, "sol") == ["Fjell-Sol Bygg AS", "Nye Sol AS", "Solberg Transport AS"]
    assert found(credit, "SOL tra") == ["Solberg Transport AS"]
    assert found(credit, "tra sol") == ["Solberg Transport AS"]
    assert found(credit, "fjell") == ["Fjell-Sol Bygg AS"]
    assert found(credit, "fjell-sol") == ["Fjell-Sol Bygg AS"]
    assert found(credit, "bygg fjell sol") == ["Fjell-Sol Bygg AS"]
    assert found(credit, "solid") == []  # inside a word is not the start of one
    assert found(credit, "sol xyz") == []
    assert found(credit, "sol", sort="-name") == [
        "Solberg Transport AS",
        "Nye Sol AS",
        "Fjell-Sol Bygg AS",
    ]


def test_a_name_with_two_matching_words_is_listed_once(world, credit):
    make(world.a, "1", "Berg Bergen Berget AS")
    make(world.a, "2", "Bergvik AS")
    text = page_text(credit, q="berg")
    assert found(credit, "berg") == ["Berg Bergen Berget AS", "Bergvik AS"]
    assert "Customers 1–2 of 2" in text


def test_other_sorts_and_number_searches_still_work(world, credit):
    make(world.a, "B-2", "Berg Alfa AS")
    make(world.a, "B-1", "Berg Beta AS")
    make(world.a, "X-1", "Havbris AS")
    assert found(credit, "berg", sort="number") == ["Berg Beta AS", "Berg Alfa AS"]
    assert found(credit, "berg", sort="balance") == ["Berg Alfa AS", "Berg Beta AS"]
    assert found(credit, "b-1") == ["Berg Beta AS"]  # a digit: the customer number too


def test_a_restricted_collector_finds_only_their_own_customers(world, client):
    collector = world.users[Role.COLLECTOR]
    colleague = make_user("colleague@acme.example")
    make(world.a, "1", "Berg Mine AS", collector=collector)
    make(world.a, "2", "Berg Theirs AS", collector=colleague)
    make(world.a, "3", "Berg Nobodys AS")
    restrict(world.a, "collector")
    work_in(client, collector, world.a)
    assert found(client, "berg") == ["Berg Mine AS"]
    assert "Customers 1–1 of 1" in page_text(client, q="berg")


def test_an_assigned_user_finds_only_the_customers_assigned_to_them(world, client):
    sales = world.users[Role.SALES]
    mine = make(world.a, "1", "Berg Mine AS")
    make(world.a, "2", "Berg Other AS")
    with system_code():
        CustomerAssignment.objects.create(entity=world.a, customer=mine, user=sales)
    restrict(world.a, "sales")
    work_in(client, sales, world.a)
    assert found(client, "berg") == ["Berg Mine AS"]
    restrict(world.a)  # unrestricted: every customer of the entity
    assert found(client, "berg") == ["Berg Mine AS", "Berg Other AS"]


def test_the_collector_filter_narrows_a_search(world, credit):
    collector = world.users[Role.COLLECTOR]
    make(world.a, "1", "Berg One AS", collector=collector)
    make(world.a, "2", "Berg Two AS")
    assert found(credit, "berg", collector=collector.pk) == ["Berg One AS"]
    assert found(credit, "berg") == ["Berg One AS", "Berg Two AS"]


def test_a_renamed_customer_is_found_by_its_new_name_only(world, credit):
    customer = make(world.a, "1", "Berg Transport AS")
    assert found(credit, "berg") == ["Berg Transport AS"]
    with system_code():
        customer.name = "Havbris Fisk AS"
        customer.save()
    assert found(credit, "berg") == []
    assert found(credit, "havbris fisk") == ["Havbris Fisk AS"]
    with system_code():  # a queryset update, no signals: the trigger still sees it
        Customer.objects.filter(pk=customer.pk).update(name="Fjord Fisk AS")
    assert found(credit, "havbris") == []
    assert found(credit, "fjord") == ["Fjord Fisk AS"]


def test_a_new_collector_moves_the_customer_between_collectors_searches(world, client):
    first = world.users[Role.COLLECTOR]
    second = make_user("second-collector@acme.example")
    from accounts.models import Membership

    Membership.objects.create(user=second, entity=world.a, role=Role.COLLECTOR)
    customer = make(world.a, "1", "Berg Transport AS", collector=first)
    restrict(world.a, "collector")
    first_client = work_in(client, first, world.a)
    assert found(first_client, "berg") == ["Berg Transport AS"]
    with system_code():
        customer.collector = second
        customer.save()
    assert found(first_client, "berg") == []
    from django.test import Client

    assert found(work_in(Client(), second, world.a), "berg") == ["Berg Transport AS"]


def test_a_deleted_customer_is_no_longer_found(world, credit):
    customer = make(world.a, "1", "Berg Transport AS")
    make(world.a, "2", "Berg Bygg AS")
    with system_code():
        customer.delete()
        assert not CustomerNameWord.objects.filter(customer_id=customer.pk).exists()
    assert found(credit, "berg") == ["Berg Bygg AS"]


def test_an_anonymised_customer_is_not_found_by_its_old_name(world, credit):
    customer = make(world.a, "K-1", "Berg Transport AS")
    with tenant_scope(world.a):
        anonymisation.anonymise(
            customer.pk, confirmation="K-1", actor=world.users[Role.CREDIT_MANAGER]
        )
    assert found(credit, "berg") == []
    assert found(credit, "transport") == []


def test_imported_customers_are_found(world, credit):
    data = csv_bytes("1001;Fjellvik Transport AS;;;;;;;;", "1002;Havbris Fisk AS;;;;;;;;")
    done = confirm_import(credit, upload_csv(credit, data))
    assert done.status_code == 200
    assert found(credit, "fjellvik") == ["Fjellvik Transport AS"]
    assert found(credit, "fisk") == ["Havbris Fisk AS"]


def test_bulk_created_customers_are_found(world, credit):
    with system_code():
        Customer.objects.bulk_create(
            [Customer(entity=world.a, number=f"{n}", name=f"Bulk {n} Berg AS") for n in range(3)]
        )
    assert found(credit, "bulk berg") == ["Bulk 0 Berg AS", "Bulk 1 Berg AS", "Bulk 2 Berg AS"]


def add_matches(entity, how_many, start=0, collector=None):
    with system_code():
        Customer.objects.bulk_create(
            Customer(
                entity=entity, number=f"N{n:05d}", name=f"Kunde {n:05d} AS", collector=collector
            )
            for n in range(start, start + how_many)
        )


def test_pages_and_the_count_of_a_short_result(world, credit):
    add_matches(world.a, 60)
    first = page_text(credit, q="kunde")
    assert "Customers 1–50 of 60" in first and "Page 1 of 2" in first
    second = credit.get("/customers/?" + next_link(first)).content.decode()
    assert "Customers 51–60 of 60" in second
    assert next_link(second) is None
    past = page_text(credit, q="kunde", page="5")
    assert "There is no page 5; the list has 2 pages." in past


def test_past_1000_matches_the_count_says_so_and_next_keeps_working(world, credit):
    add_matches(world.a, 1060)
    first = page_text(credit, q="kunde")
    assert "Customers 1–50 of 1,000+" in first and "Page 1 of" not in first
    page_21 = page_text(credit, q="kunde", page="21")
    assert "Customers 1,001–1,050 of 1,000+" in page_21
    assert found(credit, "kunde", page="21")[0] == "Kunde 01000 AS"
    link = next_link(page_21)
    assert "q=kunde" in link
    last = credit.get("/customers/?" + link).content.decode()
    assert re.findall(r"Kunde \d{5} AS", last) == [f"Kunde {n:05d} AS" for n in range(1050, 1060)]
    assert next_link(last) is None
    assert "There is no page 400; the list ends before it." in page_text(
        credit, q="kunde", page="400"
    )
    assert found(credit, "kunde", sort="-name")[0] == "Kunde 01059 AS"


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("restricted", [False, True])
def test_the_query_count_of_a_search_does_not_grow_with_its_matches(world, client, restricted):
    collector = world.users[Role.COLLECTOR]
    if restricted:
        restrict(world.a, "collector")
    work_in(client, collector, world.a)
    urls = ["/customers/?q=kunde", "/customers/?q=kunde+as&sort=-name&page=2"]
    add_matches(world.a, 60, collector=collector)
    client.get("/")  # the first request after sign-in also checks for a 2FA device
    client.get("/customers/")  # and the first list reads the collector choices
    small = {url: count_queries(client, url) for url in urls}
    add_matches(world.a, 1100, start=60, collector=collector)
    client.get("/customers/")
    large = {url: count_queries(client, url) for url in urls}
    assert large == small


def test_a_search_reads_the_words_index_only(world):
    """The page's ids and its count come from the index (entity, word, sort name,
    customer) alone, for one entity and a range of words."""
    from customers.selectors import NameSearch, Scope

    add_matches(world.a, 300)
    add_matches(world.b, 300, start=300)
    search = NameSearch(
        entity_id=world.a.pk, scope=Scope("all", 0, Role.CREDIT_MANAGER), words=("kunde",)
    )
    with tenant_scope(world.a), connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customernameword")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = Customer.objects.filter(pk__in=search.ids(0, 51)).explain()
    assert "Index Only Scan using customer_word_entity" in plan, plan
    cond = (
        r"Index Cond: \(\(entity_id = '?\d+'?(::\w+)?\) "
        r"AND \(word >= 'kunde'::text\) AND \(word < 'kundf'::text\)\)"
    )
    assert re.search(cond, plan), plan


def test_a_name_search_reads_the_words_table(world, credit):
    make(world.a, "1", "Berg Transport AS")
    with CaptureQueriesContext(connection) as queries:
        assert found(credit, "berg") == ["Berg Transport AS"]
    assert sum("customers_customernameword" in q["sql"] for q in queries) == 2  # page, count
