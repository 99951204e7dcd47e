"""The append-only audit log, the two-level security policies and password history.

Events are written only through `security.audit.record`. The log spans tenants (a failed
login for an unknown address belongs to no entity), so it is not a tenant-scoped model;
reads go through `AuditEvent.objects.visible_to(tenancy)` instead.
"""

import contextlib

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import Capability
from core.models import OutboxEmail
from security.crypto import BoundEncryptedColumn, backup_code_hashes


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit events cannot be deleted.")

    def erase_personal_data(self):
        """The one sanctioned change to the log: when a customer is anonymised, earlier
        events about it keep who did what and when, but lose the label and details that
        may name the person."""
        with self._erasing():
            return models.QuerySet.update(self, target_label="Anonym", data={})

    def erase_visitor_addresses(self):
        """With `erase_personal_data`: the address of events no user did (a customer acting
        through a link), which is the customer's personal data. Staff addresses stay."""
        with self._erasing():
            return models.QuerySet.update(self.filter(actor__isnull=True), ip=None)

    @contextlib.contextmanager
    def _erasing(self):
        """On PostgreSQL the log's trigger (migration 0011) refuses every UPDATE unless the
        transaction says it is erasing; the permission ends with the statement."""
        connection = connections[self.db]
        if connection.vendor != "postgresql":
            yield
            return
        with transaction.atomic(using=self.db), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('guardrail.audit_erasure', 'on', true)")
            yield  # on an error the savepoint's rollback undoes the setting too
            cursor.execute("SELECT set_config('guardrail.audit_erasure', 'off', true)")

    def visible_to(self, tenancy):
        """Events an admin of the current entity may see: the entity's own events, its
        members' sign-ins, and -- for main admins -- the multi-entity access's events."""
        if not tenancy.can(Capability.VIEW_AUDIT):
            return self.none()
        entity = tenancy.entity
        condition = Q(entity=entity) | self._about_members(entity.memberships.all())
        if entity.group_id is not None:
            condition |= self._about_members(entity.group.memberships.all())
            if tenancy.can(Capability.MANAGE_GROUP_SECURITY):
                condition |= Q(entity__isnull=True, entity_group_id=entity.group_id)
        return self.filter(condition)

    @staticmethod
    def _about_members(memberships):
        """Untenanted events (sign-ins) by or about the users of `memberships`."""
        user_ids = memberships.values("user_id")
        user_ids_text = memberships.annotate(
            user_id_text=Cast("user_id", models.CharField())
        ).values("user_id_text")
        return Q(entity__isnull=True, entity_group__isnull=True) & (
            Q(actor_id__in=user_ids) | Q(target_type="accounts.user", target_id__in=user_ids_text)
        )


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Kept so the log still says who acted after the user is deleted or renamed.
    actor_label = models.CharField(max_length=254, blank=True)
    entity = models.ForeignKey(
        "accounts.Entity", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    entity_group = models.ForeignKey(
        "accounts.EntityGroup",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="multi-entity access",
    )
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["entity", "-created_at"], name="audit_entity_recent"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_recent"),
            # Card history and anonymisation look events up by their target.
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")

    @property
    def subject(self):
        """What the event is about, for lists: its target, or the address a failed
        sign-in tried."""
        return self.target_label or (self.data or {}).get("username", "")


def default_sms_countries():
    """The countries whose mobile numbers may receive codes until an admin says otherwise:
    the entity's own country. An entity has no country of its own (yet), so it is the
    region numbers are read in, settings.PHONE_DEFAULT_REGION ("NO" unless set)."""
    return [settings.PHONE_DEFAULT_REGION.upper()]


class CodeRecipient(models.TextChoices):
    ADMINS = "admins", "The administrators"
    USER = "user", "The user concerned"


class SecurityPolicy(models.Model):
    """The security settings of one level: a multi-entity access (multi-level) or an
    entity (entity-level). Exactly one of `group` and `entity` is set. What applies to a
    user is computed from every level that reaches them by `security.policy`."""

    group = models.OneToOneField(
        "accounts.EntityGroup",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="security_policy",
    )
    entity = models.OneToOneField(
        "accounts.Entity",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="security_policy",
    )
    password_max_age_days = models.PositiveSmallIntegerField(
        "force a password change every (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Each user must choose a new password when theirs is older than this. "
        "Empty: passwords do not expire.",
    )
    inactivity_limit_months = models.PositiveSmallIntegerField(
        "deactivate users inactive for (months)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text="Accounts with no sign-in or activity for this many months are "
        "deactivated by a nightly job and refused at sign-in. Empty: never.",
    )
    require_2fa = models.BooleanField(
        "require two-factor authentication",
        default=False,
        help_text="Every user must confirm each sign-in with a code from an "
        "authenticator app, and enrol one if they have none.",
    )
    ip_allowlist_enabled = models.BooleanField(
        "allow access only from listed IP addresses",
        default=False,
        help_text="Sign-ins from an unlisted address are paused until a code sent by SMS "
        "approves the address.",
    )
    ip_code_recipient = models.CharField(
        "who receives validation codes",
        max_length=10,
        choices=CodeRecipient.choices,
        default=CodeRecipient.ADMINS,
        help_text="Who gets the SMS code that approves a new address.",
    )
    # Entity level only.
    restricted_roles = models.JSONField(
        default=list,
        blank=True,
        help_text="Roles whose customer visibility is restricted (entity level only).",
    )
    interactive_link_days = models.PositiveSmallIntegerField(
        "links in interactive emails are valid for (days)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="How long links in emails to customers (reminders, consent pages) work.",
    )
    document_link_days = models.PositiveSmallIntegerField(
        "links to documents are valid for (days)",
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="How long links to hosted documents (PDF invoices, supporting documents) work.",
    )
    sms_countries = models.JSONField(
        "countries whose mobile numbers may receive codes",
        default=default_sms_countries,
        blank=True,
        help_text="Two-letter country codes (ISO 3166), such as NO, SE, DK. Validation codes "
        "are texted only to mobile numbers of these countries, and a number from elsewhere "
        "cannot be saved. Empty: the default region of the installation "
        "(PHONE_DEFAULT_REGION), since an entity has no country of its own.",
    )
    updated_at = models.DateTimeField(default=timezone.now)
    # Counts changes to this level's allowlist entries (security.receivers). A session
    # remembers the versions under which its address passed and checks again when one
    # moves (security.middleware), so a removed entry takes effect on the next request.
    networks_version = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name_plural = "security policies"
        constraints = [
            models.CheckConstraint(
                condition=(Q(group__isnull=False) & Q(entity__isnull=True))
                | (Q(group__isnull=True) & Q(entity__isnull=False)),
                name="security_policy_one_level",
            )
        ]

    def __str__(self):
        return f"Security policy of {self.group or self.entity}"

    @property
    def level(self):
        return "multi-level" if self.group_id else "entity-level"

    @property
    def owner(self):
        return self.group if self.group_id else self.entity


class PasswordHistory(models.Model):
    """Hashes of a user's recent passwords, so a recent one cannot be chosen again."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="password_history"
    )
    password = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "password history"

    def __str__(self):
        return f"Password of {self.user_id} set {self.created_at:%Y-%m-%d}"


class LoginThrottle(models.Model):
    """Failed sign-in counter for one account (normalised email) or one IP address, and
    the password-reset counters (requests per address typed and per IP address).

    Written only by `security.lockouts` (and `security.password_reset`) under a row lock,
    so every web process shares exact counts. `failures` counts confirmed failures (for
    the reset kinds: requests); `in_flight` the sign-in attempts whose password is being
    checked right now (reserved, not yet known right or wrong), `in_flight_since` when the
    newest of them began (reservations older than a few seconds are a crashed process's
    and no longer count)."""

    class Kind(models.TextChoices):
        ACCOUNT = "account", "Account"
        IP = "ip", "IP address"
        RESET = "reset", "Password reset, address typed"
        RESET_IP = "reset_ip", "Password reset, IP address"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=254)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    in_flight = models.PositiveIntegerField(default=0)
    in_flight_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "key"], name="login_throttle_kind_key")
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.key}: {self.failures} failures"


class EncryptedTOTPDevice(BoundEncryptedColumn, TimestampMixin, ThrottlingMixin, Device):
    """An authenticator-app device whose secret is encrypted at rest.

    django-otp's TOTPDevice keeps its key in plain text. This model stores the key with
    security.crypto, bound to this row and its user (a key copied from another device
    does not decrypt), and borrows TOTPDevice's own methods, so verification, replay
    protection (`last_t`) and throttling stay django-otp's code. A new device is made
    with `bin_key=` (`EncryptedTOTPDevice.objects.create(user=..., bin_key=raw)`)."""

    encrypted_key = models.TextField()
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)
    # The key is bound to this row of its user (security.crypto).
    encrypted_column = "encrypted_key"
    binding_owner = "user_id"

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def bin_key(self):
        """The raw key; security.crypto.DecryptionError if the stored value is not this
        row's (copied from another device, changed, or under a key no longer configured)."""
        return self.plain()

    @bin_key.setter
    def bin_key(self, raw):
        self.set_plain(raw)

    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings


class BackupCodeDevice(ThrottlingMixin, Device):
    """One-time backup codes, stored as keyed hashes; each works once."""

    class Meta(Device.Meta):
        verbose_name = "backup codes"

    def verify_token(self, token):
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        # Under SECRET_KEY or a fallback key: codes made before a key rotation still work.
        digests = backup_code_hashes(token)
        used = self.codes.filter(code_hash__in=digests, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if used:
            self.throttle_reset()
            return True
        self.throttle_increment()
        return False

    def get_throttle_factor(self):
        return 1

    def remaining(self):
        return self.codes.filter(used_at__isnull=True).count()


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Backup code of device {self.device_id}"


class AllowedNetwork(models.Model):
    """One entry of a level's IP allowlist: an address or network (IPv4 or IPv6, CIDR).

    Entries added by admins apply to everyone; an address approved with an SMS code is
    recorded as a validated entry for the one user who signed in from it."""

    policy = models.ForeignKey(SecurityPolicy, on_delete=models.CASCADE, related_name="networks")
    network = models.CharField(max_length=64)  # normalised CIDR, e.g. 203.0.113.0/24
    label = models.CharField(max_length=100, blank=True)
    for_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Set for an address approved by code: it applies to this user only.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    approved_by_challenge = models.ForeignKey(
        "IpChallenge", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["network", "pk"]

    def __str__(self):
        return f"{self.network} ({self.label})" if self.label else self.network


class IpChallenge(models.Model):
    """A paused sign-in from an address outside the allowlist, waiting for its SMS code."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    entity = models.ForeignKey("accounts.Entity", on_delete=models.CASCADE, related_name="+")
    ip = models.GenericIPAddressField()
    session_key = models.CharField(max_length=40, blank=True)
    code_hash = models.CharField(max_length=64, blank=True)
    recipient = models.CharField(max_length=10, choices=CodeRecipient.choices)
    sent_to = models.JSONField(default=list, blank=True)  # masked numbers, for the page
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    sends = models.PositiveSmallIntegerField(default=0)
    failures = models.PositiveSmallIntegerField(default=0)
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "ip"], name="ipchallenge_user_ip")]

    def __str__(self):
        return f"Address {self.ip} for user {self.user_id}"


class PhoneConfirmation(models.Model):
    """A new mobile number a user typed on their security page, waiting for the code texted
    to it: only the right code makes it the user's `phone` (security.services). One per
    user; typing another number replaces it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    # Where the user worked when they typed it: its countries are checked again on
    # confirmation, and its SMS cap counts the text.
    entity = models.ForeignKey(
        "accounts.Entity", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    phone = models.CharField(max_length=20)  # E.164
    code_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveSmallIntegerField(default=0)

    def __str__(self):
        return f"Number waiting for its code, user {self.user_id}"


class SecurityNotice(OutboxEmail):
    """An email to a staff user about their account (a lockout, a change of two-factor
    authentication, a password or an account about to expire): security's table of the
    mail outbox (core.models.OutboxEmail), delivered by the same task as customer email.

    Not tenant-scoped, like the audit log: a lockout notice belongs to no entity."""

    class Kind(models.TextChoices):
        LOCKOUT = "lockout", "Account blocked after failed sign-ins"
        TWO_FACTOR = "twofactor", "Two-factor authentication changed"
        PASSWORD_EXPIRING = "password_expiring", "Password expires soon"
        INACTIVITY_WARNING = "inactivity_warning", "Account deactivated soon"
        PASSWORD_RESET = "password_reset", "Password reset link"
        PHONE_CHANGED = "phone_changed", "Mobile phone number changed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    entity = models.ForeignKey(
        "accounts.Entity", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # requeue_stale looks for queued notices by age.
            models.Index(fields=["status", "created_at"], name="securitynotice_status_age"),
        ]
