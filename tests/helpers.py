"""Scene builders and helpers that more than one test module uses (fixtures stay in the
conftest.py files, which build on these).

Sections: roles; reading responses (text, PDF text, private headers); signing in; rows;
customers, invoices and the documents tests' `Book`; documents and customer links;
the CSV import; consents; two-factor authentication; customer visibility."""

import hashlib
import os
import re
import threading
import time
import zlib
from datetime import date, datetime
from decimal import Decimal

from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent import services as consent_services
from consent.anonymisation import anonymise
from consent.models import ConsentEvent, ConsentSource, ConsentState, DataProcessor, PrivacySettings
from customers import csv_import, links
from customers.models import ContactPerson, Customer, CustomerLink, Invoice, LinkUse
from customers.services import AnonymisationRefused
from documents.models import Document
from security import twofactor
from security.models import AuditEvent, EncryptedTOTPDevice, SecurityPolicy
from tests.conftest import PASSWORD, work_in

# --- Roles -----------------------------------------------------------------------------------

# The roles that may change customer data, and those that may only look at it.
EDITORS = [Role.MAIN_ADMIN, Role.ADMIN, Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES_ADMIN]
VIEWERS = [Role.SALES, Role.GUEST]


# --- Reading responses -----------------------------------------------------------------------

# What every answer to a customer's link (document, page, consent page) carries.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def text(response):
    return response.content.decode()


def assert_private(response):
    for header, value in PRIVATE_HEADERS.items():
        assert response.headers.get(header) == value, (header, response.status_code)


def pdf_text(data):
    """The text drawn by fpdf2's core-font text operators, from every (deflated) stream."""
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            chunks.append(zlib.decompress(stream))
        except zlib.error:
            chunks.append(stream)
    strings = re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", b"\n".join(chunks))
    return "\n".join(re.sub(rb"\\(.)", rb"\1", s).decode("latin-1") for s in strings)


# --- Signing in ------------------------------------------------------------------------------

LOGIN = "/accounts/login/"


def sign_in(client, user, ip=None):
    """The password step of signing in, from `ip` if given (else the test client's
    address); it must answer with a redirect (onwards, or to a code step)."""
    extra = {} if ip is None else {"REMOTE_ADDR": ip}
    response = client.post(LOGIN, {"username": user.email, "password": PASSWORD}, **extra)
    assert response.status_code == 302, "the password step failed"
    return response


# --- Rows ------------------------------------------------------------------------------------


def fresh(obj):
    """`obj` as the database holds it now."""
    with system_code():
        return type(obj).objects.get(pk=obj.pk)


def audit(action, entity):
    return list(AuditEvent.objects.filter(action=action, entity=entity).order_by("pk"))


# --- Customers, invoices and the Book --------------------------------------------------------


def make_invoice(
    customer,
    number,
    amount,
    paid="0",
    *,
    issued=date(2026, 5, 1),
    due=date(2026, 5, 15),
    text="",
):
    with system_code():
        return Invoice.objects.create(
            entity=customer.entity,
            customer=customer,
            number=number,
            issued_on=issued,
            due_on=due,
            amount=Decimal(amount),
            amount_paid=Decimal(paid),
            text=text,
        )


def grant_email_consent(contact, granted=True, *, code=consent_services.REMINDER_EMAIL):
    """Record, as staff, the contact's answer for one purpose of its entity (by default
    "Invoices and reminders by email")."""
    with tenant_scope(contact.entity):
        purpose = next(p for p in consent_services.purposes_for(contact.entity) if p.code == code)
        consent_services.set_consents(contact, {purpose: granted}, source=ConsentSource.STAFF)


class Book:
    """Entity a's customer Fjellvik Transport AS (C-1, managed by the collector) with its
    contact Kari (kari@fjellvik.example), two open invoices (F-1001, F-1002) and a paid
    one (F-1000); a second customer of the same entity, Havbris AS (C-2), with an open
    invoice (F-2001).

    The defaults give the documents tests' scene; the reminders tests change them:
    - `ola_and_per`: also Ola Hansen (no email) on the customer and Per Olsen (email) on
      Havbris;
    - `stranger`: also a customer of entity c, Fremmed Firma AS, with an open invoice
      (F-9001);
    - `kari_consents`: Kari takes invoices by email, as a contact who is sent links does;
    - `open1_due`: F-1001's due date.
    """

    def __init__(
        self,
        world,
        *,
        ola_and_per=False,
        stranger=True,
        kari_consents=True,
        open1_due=date(2026, 5, 15),
    ):
        self.world = world
        self.entity = world.a
        with system_code():
            self.customer = Customer.objects.create(
                entity=world.a,
                number="C-1",
                name="Fjellvik Transport AS",
                collector=world.users[Role.COLLECTOR],
            )
            self.kari = ContactPerson.objects.create(
                entity=world.a,
                customer=self.customer,
                name="Kari Nordmann",
                email="kari@fjellvik.example",
            )
            if ola_and_per:
                self.ola = ContactPerson.objects.create(
                    entity=world.a, customer=self.customer, name="Ola Hansen"
                )
            self.other = Customer.objects.create(entity=world.a, number="C-2", name="Havbris AS")
            if ola_and_per:
                self.per = ContactPerson.objects.create(
                    entity=world.a,
                    customer=self.other,
                    name="Per Olsen",
                    email="per@havbris.example",
                )
            if stranger:
                self.stranger = Customer.objects.create(
                    entity=world.c, number="C-1", name="Fremmed Firma AS"
                )
        self.open1 = make_invoice(self.customer, "F-1001", "1000.00", due=open1_due)
        self.open2 = make_invoice(self.customer, "F-1002", "480.50", paid="80.50")
        self.paid = make_invoice(self.customer, "F-1000", "200.00", paid="200.00")
        self.others_invoice = make_invoice(self.other, "F-2001", "300.00")
        if stranger:
            self.strangers_invoice = make_invoice(self.stranger, "F-9001", "900.00")
        if kari_consents:
            grant_email_consent(self.kari)

    def consent(self, contact, granted=True, code=consent_services.REMINDER_EMAIL):
        grant_email_consent(contact, granted, code=code)

    def editor(self, client, role=Role.COLLECTOR):
        return work_in(client, self.world.users[role], self.entity)


# --- Documents and customer links ------------------------------------------------------------

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
# A link to a customer's page or document, as it appears in an email.
URL_RE = re.compile(r"https?://[^\s\"<>]+/l/[A-Za-z0-9_-]+/")


def add_document(customer, content=PDF, *, kind=Document.Kind.SUPPORTING, name="contract.pdf"):
    content_type = "application/pdf" if content.startswith(b"%PDF") else "image/png"
    with system_code():
        document = Document(
            entity=customer.entity,
            customer=customer,
            kind=kind,
            original_name=name,
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        document.file.save("doc", ContentFile(content), save=False)
        document.save()
    return document


def make_link(customer, kind, **fields):
    with system_code():
        return links.create_link(customer=customer, kind=kind, **fields)


def link_of_kind(book, kind):
    """A link of `kind` to `book`'s customer for Kari, with a document or invoice if the
    kind needs one."""
    extra = {}
    if kind == CustomerLink.Kind.DOCUMENT:
        extra["document"] = add_document(book.customer)
    elif kind == CustomerLink.Kind.INVOICE_PDF:
        extra["invoice"] = book.open1
    return make_link(book.customer, kind, contact=book.kari, **extra)


def revoke(link):
    with system_code():
        links.revoke(link, actor=None)


def settle(customer):
    """Pay every invoice of `customer` (anonymisation needs a zero balance)."""
    with system_code():
        for invoice in Invoice.objects.filter(customer=customer):
            Invoice.objects.filter(pk=invoice.pk).update(amount_paid=invoice.amount)


def erase(book):
    with system_code():
        return anonymise(book.customer.pk, confirmation="C-1", actor=book.world.users[Role.ADMIN])


def set_days(entity, **days):
    SecurityPolicy.objects.update_or_create(entity=entity, defaults=days)


def url(token, *rest):
    return "/l/" + token + "/" + "".join(f"{part}/" for part in rest)


def body_of(response):
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def dead_message(response):
    return re.search(r"<h1>(.*?)</h1>", response.content.decode()).group(1)


def uses_of(link):
    with system_code():
        return list(LinkUse.objects.filter(link=link).order_by("pk"))


# --- The CSV import --------------------------------------------------------------------------

IMPORT_URL = "/customers/import/"
IMPORT_CONFIRM_URL = "/customers/import/confirm/"
CSV_HEADER = ";".join(csv_import.COLUMNS)


def csv_bytes(*lines, header=CSV_HEADER, encoding="utf-8", bom=False):
    text = "\r\n".join([header, *lines]) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def upload_csv(client, data, name="customers.csv"):
    return client.post(
        IMPORT_URL, {"file": SimpleUploadedFile(name, data, content_type="text/csv")}
    )


def confirm_import(client, response):
    token = response.context["token"]
    assert token, response.context["problems"]
    return client.post(IMPORT_CONFIRM_URL, {"token": token}, follow=True)


# --- Consents --------------------------------------------------------------------------------

# The purposes every entity gets on first use, in their order.
DEFAULT_NAMES = [
    "Invoices and reminders by email",
    "Reminders by SMS",
    "Phone calls",
    "Newsletter",
    "Letters by post",
]


def make_contact(entity, *, number="C-1", customer_name="Fjellvik Transport AS", **fields):
    fields.setdefault("name", "Kari Nordmann")
    fields.setdefault("email", "kari@fjellvik.example")
    with system_code():
        customer = Customer.objects.filter(entity=entity, number=number).first()
        if customer is None:
            customer = Customer.objects.create(entity=entity, number=number, name=customer_name)
        return ContactPerson.objects.create(entity=entity, customer=customer, **fields)


def purposes(entity):
    with tenant_scope(entity):
        return consent_services.purposes_for(entity)


def by_name(entity):
    return {p.name: p for p in purposes(entity)}


def choices(entity, *granted_names, contact):
    """POST data ticking the named purposes, from the page as loaded now: each box also
    carries what it showed (`was_<id>`: the answer and the ledger's newest entry)."""
    markers = {True: "on", False: "off", None: "none"}
    named = by_name(entity)
    with tenant_scope(entity):
        seen = consent_services.seen_now(contact, list(named.values()))
    data = {}
    for name, p in named.items():
        data[f"was_{p.pk}"] = f"{markers[seen[p.pk].answer]}.{seen[p.pk].version}"
        if name in granted_names:
            data[f"purpose_{p.pk}"] = "on"
    return data


def states(contact):
    with system_code():
        return {
            s.purpose.name: s.granted
            for s in ConsentState.objects.filter(contact=contact).select_related("purpose")
        }


def events(contact):
    with system_code():
        return list(
            ConsentEvent.objects.filter(contact=contact)
            .select_related("purpose", "actor")
            .order_by("pk")
        )


def consent_url(contact):
    return f"/customers/contacts/{contact.pk}/consent/"


def set_privacy(entity, url="https://acme.example/privacy", version="v1"):
    with system_code():
        PrivacySettings.objects.update_or_create(
            entity=entity, defaults={"policy_url": url, "policy_version": version}
        )


def add_processor(entity, name="Mailfabrikken AS", **fields):
    fields.setdefault("purpose", "Email delivery")
    fields.setdefault("country", "Norway")
    with system_code():
        return DataProcessor.objects.create(entity=entity, name=name, **fields)


def set_link_days(entity, days):
    SecurityPolicy.objects.update_or_create(entity=entity, defaults={"interactive_link_days": days})


# --- Two-factor authentication ---------------------------------------------------------------

LOGOUT = "/accounts/logout/"
SETUP = "/account/2fa/setup/"
VERIFY = "/account/2fa/verify/"
BACKUP = "/account/2fa/backup-codes/"
REMOVE = "/account/2fa/remove/"
ACCOUNT = "/account/security/"

WRONG_AT_SETUP = "That code is not right. Check the time on your phone and try the newest code."
WRONG_AT_SIGN_IN = "That code is not right. Try the newest code from your app, or a backup code."
SETUP_REQUIRED = "Your organisation requires two-factor authentication. Set it up to continue."
BACKUP_CODE_RE = re.compile(r"^[2-9a-z]{5}-[2-9a-z]{5}$")


def code_at(device, steps=0):
    """The code the user's app shows `steps` time steps from now."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = time.time() + steps * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device):
    """A well-formed code that no step of the tolerance window accepts."""
    near = {code_at(device, steps) for steps in (-1, 0, 1)}
    return next(c for c in (f"{d}" * 6 for d in range(10)) if c not in near)


def give_authenticator(user):
    """An enrolled authenticator and fresh backup codes, as enrolment leaves them."""
    device = EncryptedTOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=True, bin_key=os.urandom(20)
    )
    codes = twofactor.regenerate_backup_codes(user, request=None)
    mail.outbox.clear()
    return device, codes


def work_in_verified(client, user, entity, device):
    """`work_in`, with the session already past the code step (as django_otp.login does)."""
    work_in(client, user, entity)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def enter_code(client, code):
    return client.post(VERIFY, {"code": code})


def sign_in_with_code(client, user, code):
    sign_in(client, user)
    return enter_code(client, code)


def session_key(client):
    return client.cookies["sessionid"].value


def shown_backup_codes(response):
    content = text(response)
    block = re.search(r'data-testid="backup-codes">(.*?)</ul>', content, re.S)
    return re.findall(r"<code>([^<]+)</code>", block.group(1)) if block else []


def pending_device(user):
    return EncryptedTOTPDevice.objects.get(user=user, confirmed=False)


def actions(action, **filters):
    return AuditEvent.objects.filter(action=action, **filters)


def signed_out(client):
    response = client.get("/")
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


# --- Customer visibility ---------------------------------------------------------------------


def restrict(entity, roles):
    """Restrict `roles` (values) of `entity` to their own customers."""
    SecurityPolicy.objects.update_or_create(entity=entity, defaults={"restricted_roles": roles})


def table_body(response):
    """The rows of a list page (the search box echoes the query, so look at rows only)."""
    match = re.search(r"<tbody>(.*?)</tbody>", text(response), re.S)
    assert match, "no table on the page"
    return match.group(1)


def customer_form(customer, **overrides):
    """The customer form as posted for `customer`, with `overrides`."""
    data = {
        "number": customer.number,
        "name": customer.name,
        "phone": customer.phone,
        "collector": customer.collector_id or "",
        "assigned": list(customer.assignments.values_list("user_id", flat=True)),
    }
    data.update(overrides)
    return data


# --- Races on PostgreSQL ---------------------------------------------------------------------

# How long a race test waits for the other session to block on a lock.
WAIT = 15


def blocked_on_a_lock():
    """Whether another session of this database waits for a lock (polled up to WAIT s)."""
    deadline = time.monotonic() + WAIT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def in_thread(target, outcomes, name):
    """Run `target` in a thread with its own connection; its result, its refusal's message
    (AnonymisationRefused) or any other exception goes into `outcomes[name]` (the test
    asserts on it)."""

    def run():
        try:
            outcomes[name] = target()
        except AnonymisationRefused as refused:
            outcomes[name] = refused.message
        except Exception as error:  # reported by the test's assertions
            outcomes[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread
