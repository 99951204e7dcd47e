"""Who works in the product, and which companies (entities) they work for.

An entity is one company using the product. A multi-entity access joins several entities;
a user linked to it reaches all of them. Every other tenant-owned model carries a NOT NULL
foreign key to Entity and is scoped through `accounts.tenancy`.
"""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.roles import Role


def normalize_email_address(value):
    """Emails are compared case-insensitively and without surrounding white space."""
    return (value or "").strip().lower()


class EntityGroup(models.Model):
    """A multi-entity access: a group of entities reached together."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "multi-entity access"
        verbose_name_plural = "multi-entity accesses"
        ordering = ["name"]

    def __str__(self):
        return self.name


class Entity(models.Model):
    """One company using the product: its customers, documents and settings."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    group = models.ForeignKey(
        EntityGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="entities",
        verbose_name="multi-entity access",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "entities"
        ordering = ["name"]

    def __str__(self):
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        # Login compares the email case-insensitively, ignoring surrounding spaces.
        return self.get(email=normalize_email_address(username))

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email_address(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with their email address."""

    email = models.EmailField("email address", max_length=254, unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(
        "mobile phone",
        max_length=20,
        blank=True,
        help_text="In international format (E.164); receives SMS validation codes.",
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Inactive users cannot log in; their data and history are kept.",
    )
    is_staff = models.BooleanField(
        "platform operator",
        default=False,
        help_text="Operators of the platform itself (Django admin). Not a tenant role.",
    )
    date_joined = models.DateTimeField(default=timezone.now)
    password_changed_at = models.DateTimeField(
        default=timezone.now,
        help_text="When the password was last set; drives forced password rotation.",
    )
    # The last sign-in or seen request (updated at most every few minutes, see
    # security.activity); a user who never signed in counts from their creation.
    last_active_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Housekeeping for the reminder jobs, so each warning is sent once.
    password_reminder_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    inactivity_warning_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="user_email_unique_ci",
                violation_error_message="A user with this email address already exists.",
            )
        ]

    def __str__(self):
        return self.full_name or self.email

    def clean(self):
        super().clean()
        self.email = normalize_email_address(self.email)

    def save(self, *args, **kwargs):
        self.email = normalize_email_address(self.email)
        super().save(*args, **kwargs)

    def set_password(self, raw_password):
        super().set_password(raw_password)
        self.password_changed_at = timezone.now()
        self.password_reminder_sent_at = None


class Membership(models.Model):
    """A user's role in one entity."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "entity"], name="membership_user_entity")
        ]

    def __str__(self):
        return f"{self.user} — {self.get_role_display()} in {self.entity}"


class GroupMembership(models.Model):
    """A user's role across every entity of a multi-entity access."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="group_memberships")
    group = models.ForeignKey(EntityGroup, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "group"], name="group_membership_user_group")
        ]

    def __str__(self):
        return f"{self.user} — {self.get_role_display()} in {self.group}"


class UserSession(AbstractBaseSession):
    """Django's database session with the signed-in user's id beside it, so every session
    of a user can be ended at once (deactivation, password change). The id is not a
    foreign key: a session may outlive its user for a moment, and must not fail to save."""

    user_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    @classmethod
    def get_session_store_class(cls):
        from accounts.sessions import SessionStore

        return SessionStore
