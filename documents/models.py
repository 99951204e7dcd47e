"""Hosted documents and the links customers use to reach them.

A link is a record: what it grants (one document, one contact's consent page, or one
customer's interactive page), who made it, when, how often it may be used, whether it
was revoked, and a log of each use. The URL carries a random token; only its SHA-256 is
stored. Validity comes from the entity's settings *at the time of use*, measured from
when the link was made, so shortening a setting shortens existing links.
"""

import re

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantManager
from core.models import OutboxEmail
from customers.models import CustomerOwnedManager

# A customer link (/l/<token>/) or consent page link (/c/<token>/) in an email's body.
TOKEN_IN_URL = re.compile(r"/(l|c)/[^/\s\"'<>]+/")


class Document(models.Model):
    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice (PDF)"
        SUPPORTING = "supporting", "Supporting document"

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="documents"
    )
    invoice = models.ForeignKey(
        "customers.Invoice",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="documents",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    file = models.FileField(upload_to="documents/%Y/%m/")
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = CustomerOwnedManager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return self.original_name


class InvoiceAction(models.Model):
    """What a customer did on their interactive page: a promise to pay, or a dispute."""

    class Kind(models.TextChoices):
        PROMISE = "promise", "Promise to pay"
        DISPUTE = "dispute", "Dispute"

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(
        "customers.Invoice", on_delete=models.CASCADE, related_name="actions"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    promised_on = models.DateField(null=True, blank=True)
    comment = models.TextField(blank=True)
    link = models.ForeignKey(
        "customers.CustomerLink", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.get_kind_display()} on invoice {self.invoice_id}"


class OutgoingEmail(OutboxEmail):
    """An email to a customer's contact: the customers' table of the mail outbox
    (core.models.OutboxEmail has the email and its delivery state; core.outbox delivers).

    Its bodies carry working link tokens until it is settled; then they are masked."""

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="emails"
    )
    contact = models.ForeignKey(
        "customers.ContactPerson", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    kind = models.CharField(max_length=20, default="reminder")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def message_id(self):
        return f"<reminder-{self.pk}@{self.entity.slug}.guardrail>"

    def without_secrets(self, body):
        """The body with its link tokens masked: once an email is settled, the database
        keeps no working link (links themselves are stored only as hashes)."""
        return TOKEN_IN_URL.sub(lambda m: f"/{m.group(1)}/…/", body)
