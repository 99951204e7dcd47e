"""Document links: the one-statement download of a document link on PostgreSQL, and
whether the customer may have a fresh link emailed when one ran out. The link grant
itself (making, checking, using, revoking) is customers.links."""

import functools
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection

from accounts.tenancy import system_code, tenant_scope
from customers.links import EXPIRED, Kind, days_setting, lookup_hash, problem_with
from customers.models import Customer, CustomerLink, LinkUse
from documents.consent_check import email_consent
from documents.models import Document
from security.models import SecurityPolicy

RENEW_EVERY = timedelta(minutes=10)


@dataclass(frozen=True)
class Download:
    """A document download whose use is counted and logged: what its answer needs."""

    entity_id: int
    file_name: str  # the name in the Document file field's storage
    original_name: str
    content_type: str


# Hand-written because the ORM cannot express an UPDATE, an INSERT and a SELECT in one
# statement: one round trip and one commit per download. {match} finds the link by its
# token's hash (a POST to the token's own URL) or by its id (a POST through the link-bound
# session, customers.link_session). Its WHERE mirrors problem_with() rule for rule (and
# counts against max_uses under the row's lock, as COUNT_AND_LOG_USE does);
# tests/documents/test_link_download.py and test_link_landing.py keep the two in step:
#   test_the_download_statement_agrees_with_problem_with (and ..._session_download_...)
# Both data-modifying CTEs always run; the final SELECT answers a row only for a use both
# counted and logged.
DOCUMENT_DOWNLOAD = """
    WITH counted AS (
        UPDATE {link} AS link SET uses = link.uses + 1
        FROM {customer} AS customer, {document} AS document
        WHERE {match}
            AND link.kind = %(kind)s
            AND customer.id = link.customer_id AND customer.anonymised_at IS NULL
            AND link.revoked_at IS NULL
            AND document.id = link.document_id
            -- Days of 24 hours, as timedelta(days=) counts them, in any session time zone.
            AND %(now)s < link.created_at + make_interval(hours => 24 * COALESCE(
                (SELECT {days} FROM {policy} WHERE entity_id = link.entity_id),
                %(default_days)s
            ))
            AND (link.max_uses IS NULL OR link.uses < link.max_uses)
        RETURNING link.id, link.entity_id, document.file, document.original_name,
            document.content_type
    ),
    logged AS (
        INSERT INTO {use} (entity_id, link_id, used_at, ip, user_agent)
        SELECT entity_id, id, %(now)s, %(ip)s::inet, %(agent)s FROM counted
        RETURNING link_id
    )
    SELECT counted.entity_id, counted.file, counted.original_name, counted.content_type
    FROM counted JOIN logged ON logged.link_id = counted.id
"""


MATCH = {"token_hash": "link.token_hash = %(key)s", "id": "link.id = %(key)s"}


@functools.cache
def _document_download_sql(by):
    """DOCUMENT_DOWNLOAD with the tables' names, finding the link `by` token_hash or id, and
    the default days of a document link (built once per process: every download runs it)."""
    quote = connection.ops.quote_name
    field = SecurityPolicy._meta.get_field(days_setting(Kind.DOCUMENT))
    sql = DOCUMENT_DOWNLOAD.format(
        match=MATCH[by],
        link=quote(CustomerLink._meta.db_table),
        customer=quote(Customer._meta.db_table),
        document=quote(Document._meta.db_table),
        policy=quote(SecurityPolicy._meta.db_table),
        days=quote(field.column),
        use=quote(LinkUse._meta.db_table),
    )
    return sql, field.default


def take_download(token, *, ip, user_agent, now):
    """A document link's download in one statement (PostgreSQL): when problem_with() finds
    nothing wrong, the use is counted and logged and the file to send is returned.

    None, with nothing counted, for anything else -- an unknown token, an unusable link,
    another kind of link, another database: the caller then takes the full path (find,
    problem_with, use), which gives every other answer."""
    hashed = lookup_hash(token)
    if hashed is None:
        return None
    return _take("token_hash", hashed, ip=ip, user_agent=user_agent, now=now)


def take_session_download(link_id, *, ip, user_agent, now):
    """The same for the link a link-bound session names (customers.link_session): what the
    Download button of a document link's page posts."""
    if link_id is None:
        return None
    return _take("id", link_id, ip=ip, user_agent=user_agent, now=now)


def _take(by, key, *, ip, user_agent, now):
    if connection.vendor != "postgresql":
        return None
    sql, default_days = _document_download_sql(by)
    params = {
        "key": key,
        "kind": Kind.DOCUMENT.value,
        "now": now,
        "default_days": default_days,
        "ip": ip,
        "agent": (user_agent or "")[:300],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return Download(*row) if row else None


def renewable(link, now):
    """Whether the customer may have a fresh link like `link` emailed to the address on
    file: only for a link whose time ran out. A withdrawn or used-up link stays so (staff
    decided), a deleted document or an anonymised customer has nothing to link to, and
    the contact must consent to email, as when staff send links."""
    if not (link.contact_id and link.contact.email) or problem_with(link, now) != EXPIRED:
        return False
    if link.max_uses is not None and link.uses >= link.max_uses:
        return False
    with tenant_scope(link.entity):
        return email_consent(link.contact)[0]


def may_renew(link, now):
    """A fresh link may be emailed at most every RENEW_EVERY per link (cache-free: uses
    the newest link made for the same purpose)."""
    with system_code():
        newest = (
            CustomerLink.objects.filter(
                customer=link.customer,
                contact=link.contact,
                kind=link.kind,
                document=link.document,
                invoice=link.invoice,
            )
            .order_by("-created_at")
            .first()
        )
    return newest is None or now - newest.created_at >= RENEW_EVERY
