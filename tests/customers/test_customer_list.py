"""The customer list at scale: a count that stops at 1,000, pages past it, clear answers to
bad page numbers, a fixed number of queries, the collector filter, and (on PostgreSQL)
the indexes the search relies on."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import Customer
from security.models import SecurityPolicy
from tests.conftest import work_in


def add_customers(entity, how_many, start=0, collector=None):
    with system_code():
        Customer.objects.bulk_create(
            Customer(
                entity=entity,
                number=f"{n:05d}",
                name=f"Kunde {n:05d} AS",
                organisation_number=f"9{n:08d}",
                collector=collector,
            )
            for n in range(start, start + how_many)
        )


def text(response):
    assert response.status_code == 200
    return response.content.decode()


def names(response):
    return re.findall(r"Kunde \d{5} AS", text(response))


def next_link(response):
    match = re.search(r'<a href="\?([^"]*)" rel="next">Next</a>', text(response))
    return match and "/customers/?" + match.group(1).replace("&amp;", "&")


@pytest.fixture
def credit(world, client):
    return work_in(client, world.users[Role.CREDIT_MANAGER], world.a)


def test_a_short_list_has_an_exact_count_and_page_numbers(world, credit):
    add_customers(world.a, 60)
    first = credit.get("/customers/")
    assert "Customers 1–50 of 60" in text(first)
    assert "Page 1 of 2" in text(first)
    second = credit.get(next_link(first))
    assert "Customers 51–60 of 60" in text(second)
    assert names(second) == [f"Kunde {n:05d} AS" for n in range(50, 60)]
    assert next_link(second) is None


def test_past_1000_the_count_says_so_and_next_keeps_working(world, credit):
    add_customers(world.a, 1060)
    first = credit.get("/customers/")
    assert "Customers 1–50 of 1,000+" in text(first)
    assert "Page 1 of" not in text(first)
    page_21 = credit.get("/customers/?page=21")
    assert "Customers 1,001–1,050 of 1,000+" in text(page_21)
    assert names(page_21)[0] == "Kunde 01000 AS"
    last = credit.get(next_link(page_21))
    assert names(last) == [f"Kunde {n:05d} AS" for n in range(1050, 1060)]
    assert next_link(last) is None
    assert 'rel="prev">Previous</a>' in text(last)


def test_next_keeps_the_search_and_sort(world, credit):
    add_customers(world.a, 120)
    first = credit.get("/customers/?q=kunde&sort=-name")
    link = next_link(first)
    assert "q=kunde" in link and "sort=-name" in link
    assert names(credit.get(link))[0] == "Kunde 00069 AS"


def test_the_name_search_finds_words_that_start_with_each_word_searched(world, credit):
    all_names = [
        "Solberg Transport AS",
        "Nye Sol AS",
        "Consolidated Freight AB",
        "Sør-Vest Sol og Strand AS",
        "Havbris AS",
    ]
    with system_code():
        for number, name in enumerate(all_names):
            Customer.objects.create(entity=world.a, number=f"S-{number}", name=name)

    def found(q):
        page = text(credit.get("/customers/", {"q": q}))
        return sorted((n for n in all_names if f">{n}<" in page), key=lambda n: page.index(n))

    assert found("sol") == ["Nye Sol AS", "Solberg Transport AS", "Sør-Vest Sol og Strand AS"]
    assert found("SOL tra") == ["Solberg Transport AS"]
    assert found("strand sør") == ["Sør-Vest Sol og Strand AS"]
    assert found("berg") == []  # inside a word is not the start of one
    assert found("s-3") == ["Sør-Vest Sol og Strand AS"]  # the customer number
    assert found("'&:*!") == []  # no words: nothing by name, and no error


@pytest.mark.parametrize("page", ["abc", "0", "-3", "1.5", "99999999999999999999999"])
def test_a_page_that_is_not_a_number_shows_the_first_page_and_says_why(world, credit, page):
    add_customers(world.a, 60)
    response = credit.get("/customers/", {"page": page})
    assert "is not a page number; showing the first page." in text(response)
    assert names(response)[0] == "Kunde 00000 AS"


def test_a_page_past_the_end_says_so_and_links_back(world, credit):
    add_customers(world.a, 60)
    response = credit.get("/customers/?page=5")
    assert "There is no page 5; the list has 2 pages." in text(response)
    assert names(response) == []
    assert 'href="?page=2">the last page</a>' in text(response)
    assert 'href="?page=1">Go to the first page</a>' in text(response)


def test_a_page_past_the_end_of_a_long_list_says_so(world, credit):
    add_customers(world.a, 1060)
    response = credit.get("/customers/?page=400")
    assert "There is no page 400; the list ends before it." in text(response)
    assert names(response) == []


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_query_count_does_not_grow_past_the_cap(world, credit):
    urls = ["/customers/", "/customers/?q=kunde", "/customers/?page=3&sort=-balance"]
    add_customers(world.a, 120)
    credit.get("/")  # the first request after sign-in also checks for a 2FA device
    credit.get("/customers/")  # and the first list reads the collector choices
    small = {url: count_queries(credit, url) for url in urls}
    add_customers(world.a, 1000, start=120)
    credit.get("/customers/")
    large = {url: count_queries(credit, url) for url in urls}
    assert large == small


def offered_collectors(client):
    """The names the customer list's collector filter offers, in order."""
    page = text(client.get("/customers/"))
    select = re.search(r'<select name="collector".*?</select>', page, re.S).group(0)
    return re.findall(r"<option [^>]*>([^<(]+) \(", select)


def test_the_collector_filter_offers_the_collectors_of_visible_customers(world, client):
    collector = world.users[Role.COLLECTOR]
    credit_manager = world.users[Role.CREDIT_MANAGER]
    add_customers(world.a, 3, collector=collector)
    add_customers(world.a, 2, start=3, collector=world.users[Role.ADMIN])
    add_customers(world.b, 1, start=5, collector=world.users[Role.SALES])
    SecurityPolicy.objects.update_or_create(
        entity=world.a, defaults={"restricted_roles": ["collector"]}
    )

    def offered(user):
        return offered_collectors(work_in(client, user, world.a))

    assert offered(credit_manager) == ["admin", "collector"]
    assert offered(collector) == ["collector"]
    work_in(client, credit_manager, world.a)
    filtered = client.get("/customers/", {"collector": world.users[Role.ADMIN].pk})
    assert names(filtered) == ["Kunde 00003 AS", "Kunde 00004 AS"]


def test_a_new_collector_is_offered_at_once(world, client):
    """The entity's collectors are kept in the cache between requests; saving or deleting
    a customer drops them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    credit = work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    add_customers(world.a, 2, collector=world.users[Role.COLLECTOR])

    def offered():
        return offered_collectors(credit)

    assert offered() == ["collector"]
    with CaptureQueriesContext(connection) as later:
        assert offered() == ["collector"]
    assert not [q for q in later.captured_queries if "RECURSIVE" in q["sql"]]

    with system_code():
        customer = Customer.objects.get(entity=world.a, number="00001")
        customer.collector = world.users[Role.ADMIN]
        customer.save()
    assert offered() == ["admin", "collector"]
    with system_code():
        customer.delete()
    assert offered() == ["collector"]


def test_a_collector_renamed_is_shown_by_the_new_name_at_once(world, client):
    credit = work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    collector = world.users[Role.COLLECTOR]
    add_customers(world.a, 2, collector=collector)

    def offered():
        return offered_collectors(credit)

    assert offered() == ["collector"]
    with CaptureQueriesContext(connection) as later:
        assert offered() == ["collector"]
    # The people are read from the cache, not from the users table.
    assert not [
        q for q in later.captured_queries if 'ORDER BY "accounts_user"."full_name"' in q["sql"]
    ]
    collector.full_name = "Kari Nordmann"
    collector.save()
    assert offered() == ["Kari Nordmann"]


# --- PostgreSQL: the search uses its indexes --------------------------------------------


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the trigram and pattern indexes exist on PostgreSQL only (migration 0004)",
)
@pytest.mark.parametrize(
    ("lookup", "index"),
    [
        ("number__istartswith", "customer_number_prefix"),
        ("organisation_number__istartswith", "customer_orgno_prefix"),
    ],
)
def test_each_search_branch_has_its_index(world, lookup, index):
    add_customers(world.a, 200)
    add_customers(world.b, 200, start=200)
    # Across entities, so that no entity index can stand in for the search index; tiny
    # tables are read whole, so make the planner show which index serves the lookup.
    with system_code(), connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = Customer.objects.filter(**{lookup: "0001"}).explain()
    assert f"Bitmap Index Scan on {index}" in plan, plan
    assert "Index Cond: " in plan and "upper(" in plan.split("Index Cond: ", 1)[1], plan


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the name-words index exists on PostgreSQL only (migration 0004)",
)
def test_the_name_search_reads_one_entitys_matches_from_its_index(world):
    """The index holds the entity (btree_gin, which compares with a bigint only: the
    tenant scope sends one) and the words of the name."""
    from accounts.tenancy import tenant_scope
    from customers.selectors import search_customers

    add_customers(world.a, 3000)
    add_customers(world.b, 200, start=3000)
    with tenant_scope(world.a), connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = search_customers(Customer.objects.all(), "kunde 0001").explain()
    scan = re.search(r"Bitmap Index Scan on customer_name_words.*\n\s+Index Cond: ([^\n]*)", plan)
    assert scan, plan
    assert f"entity_id = '{world.a.pk}'::bigint" in scan.group(1), plan
    assert "@@ '''kunde'':* & ''0001'':*'::tsquery" in scan.group(1), plan
