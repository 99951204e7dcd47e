"""Which customers a user sees, and the reads of customer data.

The rule is one queryset method, `visible_to(scope)`, on every customer-owned model
(customers.models); the scope is resolved once per request (`request_scope`, also
`request.visibility`). Lists, search, the card and its tabs, invoices, contacts, secrets,
documents, links, counts and the dashboard start from it, and the object-view mixin
applies it by default, so a role restriction cannot be forgotten by one page.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import (
    DecimalField,
    Exists,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from accounts.models import User
from accounts.roles import RESTRICTABLE_ROLES, Role
from core import cache
from customers.models import (
    AccessGroup,
    Customer,
    CustomerAssignment,
    CustomerNameWord,
    Invoice,
    Secret,
)


@dataclass(frozen=True)
class Scope:
    """Why a user sees what they see: 'all', 'managed' (as collector) or 'assigned'."""

    kind: str
    user_id: int
    role: Role


def scope_for(role, user_id, restricted_roles):
    """Pure: the visibility rule for a role under the entity's restrictions."""
    role = Role(role)
    if role.value in set(restricted_roles or ()) and role in RESTRICTABLE_ROLES:
        return Scope(RESTRICTABLE_ROLES[role], user_id, role)
    return Scope("all", user_id, role)


def restricted_roles_of(request):
    """The current entity's restricted roles, from the policy rows the request loaded."""
    entity = request.tenancy.entity
    for policy in request.security_policies:
        if policy.entity_id == entity.pk:
            return policy.restricted_roles or []
    return []


def request_scope(request):
    """The request's visibility scope, resolved once per request (request.visibility is
    this, read lazily: customers.middleware)."""
    scope = getattr(request, "_visibility_scope", None)
    if scope is None:
        scope = scope_for(request.tenancy.role, request.user.pk, restricted_roles_of(request))
        request._visibility_scope = scope
    return scope


def customer_scope(queryset, scope):
    """Filter a Customer queryset (already tenant-scoped) by `scope`."""
    return queryset.visible_to(scope)


def visible_customers(request):
    return Customer.objects.visible_to(request_scope(request))


# At most this many words of a search are used (each narrows the result).
SEARCH_WORDS = 8


def search_words(text):
    """The words of a search, as the name search reads them."""
    return re.findall(r"\w+", text.lower())[:SEARCH_WORDS]


def name_words_match(words):
    """Customers whose name has, for every word searched, a word starting with it: "sol"
    finds "Solberg AS" and "Nye Sol AS"; "sol tra" finds "Solberg Transport AS".

    On PostgreSQL this is a full-text prefix query over the name's words, served by the
    index on (entity, the name's words) (migration 0004), so a search reads one entity's
    matches only; the query reads the `name_words` alias that `search_customers` adds.
    A search by name sorted by name takes the faster road of `NameSearch`; this one
    serves the searches with a digit and those sorted by number or balance.
    Elsewhere (SQLite in development) the same rule on spaces between words."""
    if not words:
        return Q(pk__in=[])
    if connection.vendor == "postgresql":
        # Every word is \w+ only, so it needs no escaping in the tsquery syntax.
        query = SearchQuery(
            " & ".join(f"'{word}':*" for word in words), search_type="raw", config="simple"
        )
        return Q(name_words=query)
    condition = Q()
    for word in words:
        condition &= Q(name__istartswith=word) | Q(name__icontains=f" {word}")
    return condition


def search_customers(customers, text):
    """Customers whose name matches the words searched (`name_words_match`); a search
    with a digit in it also finds customers whose customer number or organisation number
    starts with it (the organisation number ignoring spaces: "912 345 678").

    Numbers are looked at only when a digit is typed: a plain word is a name, and
    leaving the numbers out keeps the name search to one index (migration 0004) with
    no per-row check of the other branches."""
    text = text.strip()
    if connection.vendor == "postgresql":
        customers = customers.alias(name_words=SearchVector("name", config="simple"))
    condition = name_words_match(search_words(text))
    if any(ch.isdigit() for ch in text):
        condition |= Q(number__istartswith=text) | Q(
            organisation_number__istartswith=text.replace(" ", "")
        )
    return customers.filter(condition)


def word_range(prefix):
    """[low, high): the words starting with `prefix`, compared byte-wise (COLLATE "C",
    where UTF-8 bytes sort as code points): "berg" gives ("berg", "berh")."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are no characters; the next one is
        last = 0xE000
    return prefix, prefix[:-1] + chr(last)


@dataclass(frozen=True)
class NameSearch:
    """A search by name read from the words table (`CustomerNameWord`, PostgreSQL).

    The page's customer ids and the capped count come from the index (entity, word,
    sort name, customer) alone (or (entity, collector, word, ...) for a collector): the
    first word is an index range, every further word a probe of the customer's own words
    (primary key (customer, word)), and the role's restriction is a condition on the
    index tuple (collector) or a probe of the assignments. The customers themselves are
    then read by id, 51 of them, with their balances (`customers.views.list_rows`).

    The SQL is hand-written: the ORM cannot say DISTINCT on two columns ordered by them
    with OFFSET inside an IN subquery, nor count distinct ids up to a cap without
    reading them all into a subquery it then wraps. Every value is a parameter and the
    plan is the same for every word (an index range), so a prepared statement's generic
    plan serves it: no per-search planning, unlike `search_customers`."""

    entity_id: int
    scope: Scope
    words: tuple
    collector_id: int | None = None
    descending: bool = False

    def _where(self):
        """The FROM and WHERE of the matching words of the first (longest: likely the
        rarest) word, with their parameters."""
        table = CustomerNameWord._meta.db_table
        first, *others = sorted(self.words, key=len, reverse=True)
        sql = [f"FROM {table} w WHERE w.entity_id = %s AND w.word >= %s AND w.word < %s"]
        params = [self.entity_id, *word_range(first)]
        for word in others:
            sql.append(
                f"AND EXISTS (SELECT 1 FROM {table} o WHERE o.customer_id = w.customer_id "
                "AND o.word >= %s AND o.word < %s)"
            )
            params.extend(word_range(word))
        if self.scope.kind == "managed":
            sql.append("AND w.collector_id = %s")
            params.append(self.scope.user_id)
        elif self.scope.kind == "assigned":
            sql.append(
                f"AND EXISTS (SELECT 1 FROM {CustomerAssignment._meta.db_table} a "
                "WHERE a.customer_id = w.customer_id AND a.user_id = %s)"
            )
            params.append(self.scope.user_id)
        if self.collector_id is not None:
            sql.append("AND w.collector_id = %s")
            params.append(self.collector_id)
        return " ".join(sql), params

    def count(self, limit):
        """How many customers match, counted up to `limit`."""
        where, params = self._where()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT w.customer_id {where} LIMIT %s) t",
                [*params, limit],
            )
            return cursor.fetchone()[0]

    def ids(self, offset, limit):
        """The ids of a page of matching customers, in name order, as a subquery. A
        customer with two matching words is one customer (DISTINCT)."""
        where, params = self._where()
        order = " DESC" if self.descending else ""
        return RawSQL(
            f"SELECT w.customer_id {where} GROUP BY w.sort_name, w.customer_id "
            f"ORDER BY w.sort_name{order}, w.customer_id{order} OFFSET %s LIMIT %s",
            [*params, offset, limit],
        )


def name_search(request, text, *, collector_id=None, descending=False):
    """The `NameSearch` for this search text, or None when it does not apply: not on
    PostgreSQL, no word in it, or a digit in it (numbers are searched too, by
    `search_customers`)."""
    words = search_words(text)
    if connection.vendor != "postgresql" or not words or any(ch.isdigit() for ch in text):
        return None
    return NameSearch(
        entity_id=request.tenancy.entity.pk,
        scope=request_scope(request),
        words=tuple(words),
        collector_id=collector_id,
        descending=descending,
    )


# The distinct collectors of one entity, one index probe per collector (a "loose index
# scan" on (entity, collector, ...)) instead of reading every customer of the entity:
# 4 ms instead of 30-75 ms for 372 collectors over 193,000 customers. Portable SQL.
_ENTITY_COLLECTORS = """
    WITH RECURSIVE collectors(id) AS (
        SELECT MIN(collector_id) FROM {table} WHERE entity_id = %s
        UNION ALL
        SELECT (SELECT MIN(c.collector_id) FROM {table} c
                WHERE c.entity_id = %s AND c.collector_id > collectors.id)
        FROM collectors WHERE collectors.id IS NOT NULL
    )
    SELECT id FROM collectors WHERE id IS NOT NULL
"""


# The entity's collectors, as the filter shows them, are kept in the shared cache: every
# customer list of an unrestricted user needs them (reading 372 people took 3 ms a page).
# Any customer saved or deleted in the entity drops them, and so does a collector's new
# name or address (customers.receivers), so the filter is right at once. Writes that
# send no signals (bulk_create, queryset updates) are caught up within the expiry.
COLLECTORS_CACHE_SECONDS = 300


def entity_collectors_key(entity_id):
    return f"customers:collectors:{entity_id}"


def collector_rows(users):
    """(pk, full_name, email) of these users, in the order the filter lists them."""
    return list(users.order_by("full_name", "email").values_list("pk", "full_name", "email"))


def entity_collectors(entity_id):
    """[(pk, full_name, email)] of the people who collect customers of this entity."""

    def compute():
        with connection.cursor() as cursor:
            cursor.execute(
                _ENTITY_COLLECTORS.format(table=Customer._meta.db_table), [entity_id, entity_id]
            )
            ids = [row[0] for row in cursor.fetchall()]
        return collector_rows(User.objects.filter(pk__in=ids))

    # Without the cache (Redis down) the filter is read from the database.
    return cache.get_or_compute(entity_collectors_key(entity_id), compute, COLLECTORS_CACHE_SECONDS)


def collectors_of_visible_customers(request):
    """The people who collect at least one customer the request may see, as
    [(pk, full_name, email)]: the choices of the customer list's collector filter (a
    restricted collector gets only themselves)."""
    scope = request_scope(request)
    if scope.kind == "all":
        return entity_collectors(request.tenancy.entity.pk)
    visible = customer_scope(Customer.objects.all(), scope)
    return collector_rows(
        User.objects.filter(pk__in=visible.filter(collector__isnull=False).values("collector_id"))
    )


def with_balance(customers):
    """Annotate each customer's ledger balance (what is still outstanding), one subquery."""
    outstanding = (
        Invoice.objects.filter(customer_id=OuterRef("pk"))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum(F("amount") - F("amount_paid")))
        .values("total")
    )
    money = DecimalField(max_digits=16, decimal_places=2)
    return customers.annotate(
        balance=Coalesce(
            Subquery(outstanding, output_field=money), Value(Decimal("0")), output_field=money
        )
    )


def ledger_balance(customer):
    total = customer.invoices.aggregate(total=Sum(F("amount") - F("amount_paid")))["total"]
    return total or Decimal("0")


def why_visible(scope, customer):
    """A sentence for the card: why this user sees this customer."""
    if scope.kind == "managed":
        return f"You see this customer because you are its collector ({scope.role.label} role)."
    if scope.kind == "assigned":
        return f"You see this customer because it is assigned to you ({scope.role.label} role)."
    return f"Your role ({scope.role.label}) sees every customer of this entity."


def readable_secrets(customer, user):
    """Secrets of `customer` that `user` may read: those shared with a group they are in."""
    my_groups = AccessGroup.objects.filter(members=user).values("pk")
    return Secret.objects.filter(customer=customer).filter(
        Exists(
            Secret.groups.through.objects.filter(
                secret_id=OuterRef("pk"), accessgroup_id__in=my_groups
            )
        )
    )
