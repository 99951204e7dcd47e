"""Customer links: making, checking, using and revoking them.

The URL carries a random token; the database keeps its SHA-256 only, so a leaked
database does not leak working links and a tampered token matches nothing. On PostgreSQL
a usable document link is checked, counted and logged by one statement (take_download);
everything else goes through find, problem_with and use.
"""

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import system_code
from customers.models import Customer
from documents.models import CustomerLink, Document, LinkUse
from security.audit import record
from security.models import SecurityPolicy

Kind = CustomerLink.Kind
RENEW_EVERY = timedelta(minutes=10)


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def lookup_hash(token):
    """The hash a token is looked up by, or None for a token no link can have."""
    if not token or len(token) > 100:
        return None
    return token_hash(token)


def create_link(
    *,
    customer,
    kind,
    contact=None,
    document=None,
    invoice=None,
    actor=None,
    max_uses=None,
    request=None,
    now=None,
):
    """A new link; returns (link, token). The token is shown once, in the URL."""
    token = secrets.token_urlsafe(32)
    link = CustomerLink.objects.create(
        entity=customer.entity,
        customer=customer,
        contact=contact,
        kind=kind,
        document=document,
        invoice=invoice,
        token_hash=token_hash(token),
        created_by=actor,
        created_at=now or timezone.now(),
        max_uses=max_uses,
    )
    record(
        "link.created",
        actor=actor,
        entity=customer.entity,
        target=customer,
        request=request,
        data={"link": link.pk, "kind": kind},
    )
    return link, token


DOCUMENT_KINDS = (Kind.DOCUMENT, Kind.INVOICE_PDF)


def days_setting(kind):
    """The SecurityPolicy field that says how many days a link of this kind works."""
    return "document_link_days" if kind in DOCUMENT_KINDS else "interactive_link_days"


def validity(link):
    """How long a link works, from the entity's settings in force now (the defaults while
    the entity has no settings row)."""
    try:
        policy = link.entity.security_policy  # joined by find(); one query otherwise
    except SecurityPolicy.DoesNotExist:
        policy = None
    field = days_setting(link.kind)
    days = getattr(policy, field) if policy else SecurityPolicy._meta.get_field(field).default
    return timedelta(days=days)


EXPIRED = "This link has expired."


def problem_with(link, now):
    """Why a link cannot be used now, as a sentence, or None when it can."""
    if link.customer.anonymised_at is not None:
        return "This link is no longer valid."
    if link.revoked_at is not None:
        return "This link was withdrawn."
    if link.kind == Kind.DOCUMENT and link.document_id is None:
        return "This document is no longer available."
    if now >= link.created_at + validity(link):
        return EXPIRED
    if link.max_uses is not None and link.uses >= link.max_uses:
        return "This link has been used as many times as it allows."
    return None


def find(token):
    """The link a token names (any entity: the token is the credential), or None."""
    hashed = lookup_hash(token)
    if hashed is None:
        return None
    with system_code():
        try:
            # The contact and the invoice are read when a page needs them.
            return CustomerLink.objects.select_related(
                "customer", "entity__security_policy", "document"
            ).get(token_hash=hashed)
        except CustomerLink.DoesNotExist:
            return None


# Hand-written because the ORM cannot put an UPDATE and an INSERT in one statement: on
# PostgreSQL a use is counted (against max_uses and revocation, under the row's lock)
# and logged by this one statement, one round trip and one commit per download.
COUNT_AND_LOG_USE = """
    WITH counted AS (
        UPDATE {link} SET uses = uses + 1
        WHERE id = %(link)s AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses)
        RETURNING id, entity_id
    )
    INSERT INTO {use} (entity_id, link_id, used_at, ip, user_agent)
    SELECT entity_id, id, %(now)s, %(ip)s::inet, %(agent)s FROM counted
"""


def use(link, *, ip, user_agent, now):
    """Count one use, atomically against max_uses; False if it is used up meanwhile."""
    user_agent = (user_agent or "")[:300]
    if connection.vendor == "postgresql":
        sql = COUNT_AND_LOG_USE.format(
            link=connection.ops.quote_name(CustomerLink._meta.db_table),
            use=connection.ops.quote_name(LinkUse._meta.db_table),
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, {"link": link.pk, "now": now, "ip": ip, "agent": user_agent})
            counted = cursor.rowcount == 1
        if counted:
            link.uses += 1
        return counted
    # Elsewhere (SQLite in development) the same in a transaction.
    with system_code(), transaction.atomic():
        rows = CustomerLink.objects.filter(pk=link.pk, revoked_at__isnull=True)
        if link.max_uses is not None:
            rows = rows.filter(uses__lt=link.max_uses)
        if not rows.update(uses=F("uses") + 1):
            return False
        LinkUse.objects.create(
            entity=link.entity, link=link, used_at=now, ip=ip, user_agent=user_agent
        )
    link.uses += 1
    return True


def log_view(link, *, ip, user_agent, now):
    """Log an access that spends no use (the customer's page opened)."""
    with system_code():
        LinkUse.objects.create(
            entity_id=link.entity_id,
            link=link,
            used_at=now,
            ip=ip,
            user_agent=(user_agent or "")[:300],
            counted=False,
        )


@dataclass(frozen=True)
class Download:
    """A document download whose use is counted and logged: what its answer needs."""

    entity_id: int
    file_name: str  # the name in the Document file field's storage
    original_name: str
    content_type: str


# Hand-written because the ORM cannot express an UPDATE, an INSERT and a SELECT in one
# statement: one round trip and one commit per download. Its WHERE mirrors problem_with()
# rule for rule (and counts against max_uses under the row's lock, as COUNT_AND_LOG_USE
# does); tests/test_documents.py keeps the two in step:
#   test_the_download_statement_agrees_with_problem_with
# Both data-modifying CTEs always run; the final SELECT answers a row only for a use both
# counted and logged.
DOCUMENT_DOWNLOAD = """
    WITH counted AS (
        UPDATE {link} AS link SET uses = link.uses + 1
        FROM {customer} AS customer, {document} AS document
        WHERE link.token_hash = %(token_hash)s
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


@functools.cache
def _document_download_sql():
    """DOCUMENT_DOWNLOAD with the tables' names, and the default days of a document link
    (built once per process: every download runs it)."""
    quote = connection.ops.quote_name
    field = SecurityPolicy._meta.get_field(days_setting(Kind.DOCUMENT))
    sql = DOCUMENT_DOWNLOAD.format(
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
    if hashed is None or connection.vendor != "postgresql":
        return None
    sql, default_days = _document_download_sql()
    params = {
        "token_hash": hashed,
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


def revoke(link, *, actor, request=None, now=None):
    if link.revoked_at is None:
        CustomerLink.objects.filter(pk=link.pk).update(revoked_at=now or timezone.now())
        record(
            "link.revoked",
            actor=actor,
            entity=link.entity,
            target=link.customer,
            request=request,
            data={"link": link.pk, "kind": link.kind},
        )


def status_of(link, now):
    return problem_with(link, now) or "Active"


def url_for(request, token):
    return request.build_absolute_uri(reverse("customer-link", args=[token]))


def renewable(link, now):
    """Whether the customer may have a fresh link like `link` emailed to the address on
    file: only for a link whose time ran out. A withdrawn or used-up link stays so (staff
    decided), a deleted document or an anonymised customer has nothing to link to, and
    the contact must consent to email, as when staff send links."""
    from accounts.tenancy import tenant_scope
    from consent.services import REMINDER_EMAIL, consent_given

    if not (link.contact_id and link.contact.email) or problem_with(link, now) != EXPIRED:
        return False
    if link.max_uses is not None and link.uses >= link.max_uses:
        return False
    with tenant_scope(link.entity):
        return consent_given(link.contact, REMINDER_EMAIL)[0]


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
