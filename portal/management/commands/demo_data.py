"""Create (or refresh) the demo tenant so a newcomer can try every feature.

Idempotent: running it again updates the same rows. Later features extend `DEMO_USERS`
and `build()` with their own demo data.
"""

import os
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Entity, EntityGroup, GroupMembership, Membership, User
from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent.models import ConsentSource, ConsentState, DataProcessor, PrivacySettings
from consent.services import REMINDER_EMAIL, purposes_for, set_consents
from customers.models import (
    AccessGroup,
    ContactPerson,
    Customer,
    CustomerAssignment,
    Invoice,
    Secret,
)
from security.models import AllowedNetwork, SecurityPolicy

GROUP_NAME = "Nordlys Group"
ENTITIES = [("nordlys-finans", "Nordlys Finans AS"), ("nordlys-inkasso", "Nordlys Inkasso AB")]

# (email, full name, role, where): where is "group" or an entity slug.
DEMO_USERS = [
    ("main-admin@demo.example", "Mona Main-Admin", Role.MAIN_ADMIN, "group"),
    ("admin@demo.example", "Arne Admin", Role.ADMIN, "nordlys-finans"),
    ("credit-manager@demo.example", "Kari Credit-Manager", Role.CREDIT_MANAGER, "nordlys-finans"),
    ("collector@demo.example", "Cato Collector", Role.COLLECTOR, "nordlys-finans"),
    ("sales@demo.example", "Siri Sales", Role.SALES, "nordlys-finans"),
    ("sales-admin@demo.example", "Stian Sales-Admin", Role.SALES_ADMIN, "nordlys-finans"),
    ("guest@demo.example", "Gro Guest", Role.GUEST, "nordlys-finans"),
    ("inkasso-admin@demo.example", "Ingrid Inkasso-Admin", Role.ADMIN, "nordlys-inkasso"),
    # Users whose state shows a security setting at work (see README, Demo data):
    ("expired-password@demo.example", "Eva Expired", Role.SALES, "nordlys-finans"),
    ("expiring-password@demo.example", "Erik Expiring", Role.GUEST, "nordlys-finans"),
    ("inactive@demo.example", "Ivar Inactive", Role.GUEST, "nordlys-finans"),
]

# Days since the password was set / months since the last activity, per demo user.
PASSWORD_AGE_DAYS = {"expired-password@demo.example": 45, "expiring-password@demo.example": 26}
IDLE_MONTHS = {"inactive@demo.example": 7}
DEMO_PHONES = {
    "inkasso-admin@demo.example": "+4791234567",
    "main-admin@demo.example": "+4791234568",
}

DEMO_CUSTOMERS = {
    "nordlys-finans": [
        ("10001", "Bergen Bygg AS", "912345678"),
        ("10002", "Tromsø Fisk AS", "923456789"),
        ("10003", "Oslo Optikk AS", "934567890"),
        ("10004", "Stavanger Sveis AS", "945678901"),
        ("10005", "Bodø Bakeri AS", "956789012"),
        ("10006", "Ålesund Ål AS", "967890123"),
    ],
    "nordlys-inkasso": [
        ("20001", "Göteborg Glas AB", "5560123456"),
        ("20002", "Malmö Möbler AB", "5560234567"),
    ],
}

# Who manages / follows which demo customer of Nordlys Finans AS (its policy restricts the
# Collector and Sales roles to their own customers).
COLLECTOR_OF = {
    "10001": "collector@demo.example",
    "10002": "collector@demo.example",
    "10004": "credit-manager@demo.example",
}
ASSIGNED_TO = {
    "10002": ["sales@demo.example"],
    "10003": ["sales@demo.example", "guest@demo.example"],
    "10005": ["sales-admin@demo.example"],
}

PASSWORD_FILE = Path(settings.BASE_DIR) / ".demo_password"


def generate_password():
    # Letters, digits, an uppercase letter and a special character: meets the rules.
    return f"Demo-{secrets.token_urlsafe(9)}-7!"


class Command(BaseCommand):
    help = "Create or refresh the demo multi-entity access, entities, users and customers."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            help="Password for every demo user (default: $DEMO_PASSWORD, else the one "
            "generated on the first run and kept in .demo_password).",
        )

    def handle(self, *args, password=None, **options):
        password, source = self.choose_password(password)
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError("The demo password is too weak: " + " ".join(exc.messages)) from None
        with system_code(), transaction.atomic():
            build(password)
        self.stdout.write(self.style.SUCCESS("Demo data is ready. Log in at /accounts/login/ as:"))
        for email, _, role, where in DEMO_USERS:
            self.stdout.write(f"  {email:<30} {role.label} ({where})")
        self.stdout.write(f"Password for every demo user ({source}): {password}")

    def choose_password(self, option):
        if option:
            return option, "from --password"
        from_env = os.environ.get("DEMO_PASSWORD", "").strip()
        if from_env:
            return from_env, "from DEMO_PASSWORD"
        if PASSWORD_FILE.exists():
            kept = PASSWORD_FILE.read_text(encoding="utf-8").strip()
            if kept:
                return kept, f"kept in {PASSWORD_FILE.name}"
        generated = generate_password()
        PASSWORD_FILE.write_text(generated + "\n", encoding="utf-8")
        PASSWORD_FILE.chmod(0o600)
        return generated, f"generated, kept in {PASSWORD_FILE.name}"


def slug_of(name):
    return "".join(ch for ch in name.lower().split()[0] if ch.isalnum()) or "kunde"


def build(password):
    group, _ = EntityGroup.objects.get_or_create(name=GROUP_NAME)
    entities = {}
    for slug, name in ENTITIES:
        entities[slug], _ = Entity.objects.update_or_create(
            slug=slug, defaults={"name": name, "group": group}
        )
    for email, full_name, role, where in DEMO_USERS:
        user = User.objects.filter(email=email).first() or User(email=email)
        user.full_name = full_name
        user.is_active = True
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        if where == "group":
            GroupMembership.objects.update_or_create(
                user=user, group=group, defaults={"role": role}
            )
        else:
            Membership.objects.update_or_create(
                user=user, entity=entities[where], defaults={"role": role}
            )
    SecurityPolicy.objects.update_or_create(
        group=group, defaults={"password_max_age_days": 90, "inactivity_limit_months": 12}
    )
    SecurityPolicy.objects.update_or_create(
        entity=entities["nordlys-finans"],
        defaults={"password_max_age_days": 30, "inactivity_limit_months": 6},
    )
    # Nordlys Inkasso AB only allows its office network, which excludes 127.0.0.1: signing
    # in there locally asks for an SMS code, printed by the console SMS backend. Being a
    # Swedish company with Norwegian staff, it texts codes to mobiles of both countries.
    inkasso_policy, _ = SecurityPolicy.objects.update_or_create(
        entity=entities["nordlys-inkasso"],
        defaults={
            "ip_allowlist_enabled": True,
            "ip_code_recipient": "user",
            "sms_countries": ["NO", "SE"],
        },
    )
    AllowedNetwork.objects.get_or_create(
        policy=inkasso_policy, network="10.0.0.0/8", for_user=None, defaults={"label": "Office"}
    )
    # Set as confirmed numbers: a number typed on the account page is used only after the
    # code texted to it; the demo's are ready to receive codes.
    for email, phone in DEMO_PHONES.items():
        User.objects.filter(email=email).update(phone=phone)
    now = timezone.now()
    for email, days in PASSWORD_AGE_DAYS.items():
        User.objects.filter(email=email).update(
            password_changed_at=now - timedelta(days=days), password_reminder_sent_at=None
        )
    for email, months in IDLE_MONTHS.items():
        User.objects.filter(email=email).update(
            last_active_at=now - relativedelta(months=months), is_active=True
        )
    users = {u.email: u for u in User.objects.filter(email__endswith="@demo.example")}
    customers = {}
    for slug, rows in DEMO_CUSTOMERS.items():
        for number, name, org in rows:
            customers[number], _ = Customer.objects.update_or_create(
                entity=entities[slug],
                number=number,
                defaults={
                    "name": name,
                    "organisation_number": org,
                    "email": f"post@{slug_of(name)}.example",
                    "address": f"{name}\nStorgata {number[-2:]}\n0155 Oslo",
                    "collector": users.get(COLLECTOR_OF.get(number)),
                },
            )
            customer = customers[number]
            ContactPerson.objects.get_or_create(
                entity=customer.entity,
                customer=customer,
                name=f"Kontakt {name.split()[0]}",
                defaults={"title": "Økonomisjef", "email": f"okonomi@{slug_of(name)}.example"},
            )
            for index, (amount, paid) in enumerate([("12500.00", "12500.00"), ("8300.50", "0")]):
                Invoice.objects.get_or_create(
                    entity=customer.entity,
                    number=f"{number}-{index + 1}",
                    defaults={
                        "customer": customer,
                        "issued_on": now.date() - timedelta(days=40 - index * 20),
                        "due_on": now.date() - timedelta(days=10 - index * 20),
                        "amount": Decimal(amount),
                        "amount_paid": Decimal(paid),
                    },
                )
    for number, emails in ASSIGNED_TO.items():
        customer = customers[number]
        for email in emails:
            CustomerAssignment.objects.get_or_create(
                entity=customer.entity, customer=customer, user=users[email]
            )
    finans = entities["nordlys-finans"]
    SecurityPolicy.objects.filter(entity=finans).update(
        restricted_roles=[Role.COLLECTOR.value, Role.SALES.value]
    )
    privacy, _ = PrivacySettings.objects.get_or_create(entity=finans)
    privacy.policy_url = "https://nordlys.example/personvern"
    privacy.policy_version = "2026-01"
    privacy.save()
    for name, purpose, country in [
        ("Postnord AS", "Printing and posting invoices", "Norway"),
        ("Mailfabrikken AS", "Sending invoice and reminder emails", "Norway"),
    ]:
        DataProcessor.objects.get_or_create(
            entity=finans,
            name=name,
            defaults={"purpose": purpose, "country": country, "agreement_date": now.date()},
        )
    # The contacts of Nordlys Finans AS agreed to invoices and reminders by email, so the
    # demo reminder can be sent (Documents tab of a customer card).
    with tenant_scope(finans):
        reminder_purpose = next(p for p in purposes_for(finans) if p.code == REMINDER_EMAIL)
        for contact in ContactPerson.objects.filter(entity=finans):
            if not ConsentState.objects.filter(contact=contact, purpose=reminder_purpose).exists():
                set_consents(contact, {reminder_purpose: True}, source=ConsentSource.IMPORT)
    # 10006 has paid everything: it can be anonymised; the others have a balance.
    Invoice.objects.filter(customer=customers["10006"]).update(amount_paid=F("amount"))
    legal, _ = AccessGroup.objects.get_or_create(entity=finans, name="Legal")
    legal.members.add(users["admin@demo.example"], users["credit-manager@demo.example"])
    if not Secret.objects.filter(customer=customers["10001"], title="Payment plan").exists():
        secret = Secret(
            entity=finans,
            customer=customers["10001"],
            title="Payment plan",
            created_by=users["admin@demo.example"],
        )
        secret.set_body(
            "Agreed by phone: 3 instalments, first on the 15th. Do not send to collection."
        )
        secret.save()
        secret.groups.set([legal])
