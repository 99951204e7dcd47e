"""Communication consents per contact person, with an append-only history, the entity's
privacy settings and its data processors.

The current state (`ConsentState`) is written only together with a `ConsentEvent` by
`consent.services.set_consents`, so it always agrees with the ledger.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantManager


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PHONE = "phone", "Phone"
    POST = "post", "Post"


class LegalBasis(models.TextChoices):
    CONSENT = "consent", "Consent"
    CONTRACT = "contract", "Contract"
    LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest"


class ConsentPurpose(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    # Set on the purposes the product itself checks before sending (e.g. reminders).
    code = models.SlugField(max_length=40, blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    description = models.TextField(blank=True)
    legal_basis = models.CharField(
        max_length=30, choices=LegalBasis.choices, default=LegalBasis.CONSENT
    )
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    objects = TenantManager()

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "name"], name="consent_purpose_name")
        ]

    def __str__(self):
        return self.name


class ConsentState(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    contact = models.ForeignKey(
        "customers.ContactPerson", on_delete=models.CASCADE, related_name="consents"
    )
    purpose = models.ForeignKey(ConsentPurpose, on_delete=models.CASCADE, related_name="+")
    granted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "purpose"], name="consent_state_once")
        ]

    def __str__(self):
        return f"{self.purpose}: {'granted' if self.granted else 'not granted'}"


class ConsentSource(models.TextChoices):
    STAFF = "staff", "Staff"
    SELF_SERVICE = "self_service", "The contact (self-service)"
    IMPORT = "import", "Import"


class ConsentEvent(models.Model):
    """One change of one consent; never updated except to erase IP and user agent when
    the customer is anonymised."""

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    contact = models.ForeignKey(
        "customers.ContactPerson", on_delete=models.CASCADE, related_name="consent_events"
    )
    purpose = models.ForeignKey(ConsentPurpose, on_delete=models.PROTECT, related_name="+")
    old_value = models.BooleanField(null=True)  # None: never recorded before
    new_value = models.BooleanField()
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    privacy_policy_version = models.CharField(max_length=50, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.purpose}: {self.old_value} -> {self.new_value}"


class PrivacySettings(models.Model):
    entity = models.OneToOneField(
        "accounts.Entity", on_delete=models.CASCADE, related_name="privacy_settings"
    )
    policy_url = models.URLField("privacy policy URL", blank=True)
    policy_version = models.CharField(
        "privacy policy version",
        max_length=50,
        blank=True,
        help_text="A label such as 2026-03 or v4; recorded with each self-service change.",
    )

    objects = TenantManager()

    def __str__(self):
        return f"Privacy settings of {self.entity_id}"


class DataProcessor(models.Model):
    """A company the entity exchanges personal data with (shown on the consent form)."""

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    purpose = models.CharField(max_length=200)
    country = models.CharField(max_length=100)
    agreement_date = models.DateField("data processing agreement signed", null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name
