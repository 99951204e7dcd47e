"""The link grant: making, checking, using and revoking the links emailed to customers
(documents, invoice PDFs, the consent page, the customer's page).

The URL carries a random token; the database keeps its SHA-256 only, so a leaked
database does not leak working links and a tampered token matches nothing. Documents and
consent both use it, so it sits below both. (On PostgreSQL a usable document link is
checked, counted and logged by one statement: documents.links.take_download.)
"""

import hashlib
import secrets
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import system_code
from core.http import site_url
from customers.models import CustomerLink, LinkUse
from security.audit import record
from security.models import SecurityPolicy

Kind = CustomerLink.Kind


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


def consent_page_token(contact, *, actor=None, request=None):
    """A new link to `contact`'s consent page (revocable, logged, valid per the entity's
    setting for links in interactive emails); returns its token, which exists only in the
    URL. Reminders carry one, and consent emails one on its own."""
    _, token = create_link(
        customer=contact.customer, kind=Kind.CONSENT, contact=contact, actor=actor, request=request
    )
    return token


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
    return _get(token_hash=hashed)


def find_by_id(link_id):
    """The link a link-bound session names (customers.link_session: its signed cookie is
    the credential), or None."""
    if link_id is None:
        return None
    return _get(pk=link_id)


def _get(**key):
    with system_code():
        try:
            # The contact and the invoice are read when a page needs them.
            return CustomerLink.objects.select_related(
                "customer", "entity__security_policy", "document"
            ).get(**key)
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
    """Log an access that spends no use: the link opened (customers.link_session.exchange)."""
    with system_code():
        LinkUse.objects.create(
            entity_id=link.entity_id,
            link=link,
            used_at=now,
            ip=ip,
            user_agent=(user_agent or "")[:300],
            counted=False,
        )


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


def url_for(token):
    """The link's URL for an email: on settings.SITE_URL, never a request's Host header."""
    return site_url(reverse("customer-link", args=[token]))
