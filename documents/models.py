"""Hosted documents and the links customers use to reach them.

A link is a record: what it grants (one document, one contact's consent page, or one
customer's interactive page), who made it, when, how often it may be used, whether it
was revoked, and a log of each use. The URL carries a random token; only its SHA-256 is
stored. Validity comes from the entity's settings *at the time of use*, measured from
when the link was made, so shortening a setting shortens existing links.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantManager
from customers.models import CustomerOwnedManager


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


class OutgoingEmail(models.Model):
    """An email to a customer's contact, queued for the Celery worker.

    Sent at most once: the worker claims the row (queued -> sending) before talking to
    SMTP and marks it sent after; a retry after a transient SMTP error puts it back to
    queued; a row left in `sending` by a dead worker is never resent automatically."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Not sent"

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="emails"
    )
    contact = models.ForeignKey(
        "customers.ContactPerson", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    kind = models.CharField(max_length=20, default="reminder")
    to = models.EmailField()
    subject = models.CharField(max_length=200)
    text_body = models.TextField()
    html_body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.subject} to {self.to}"
