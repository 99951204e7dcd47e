"""Customers of an entity, their contact persons and invoices, access groups and secrets.

Every row belongs to exactly one entity (a NOT NULL foreign key) and is reached through
`TenantManager`; which customers a user may see inside the entity is decided in one place,
`visible_to(scope)` on the queryset of every customer-owned model (below).
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantManager, bigint
from security.crypto import BoundEncryptedColumn

# What an anonymised customer's and contact's names read afterwards.
ANONYM = "Anonym"


# --- Visibility ---------------------------------------------------------------------------
# Which customers a user may see inside their entity is one rule (customers.selectors.Scope:
# "all", "managed" as collector, "assigned"), applied by `visible_to(scope)` on the
# queryset of every customer-owned model. The object-view mixin (accounts.access) applies
# it by default with the scope the request resolved once (request.visibility).


class CustomerQuerySet(models.QuerySet):
    def visible_to(self, scope):
        """The customers `scope` may see (the queryset is already the entity's)."""
        if scope.kind == "all":
            return self
        if scope.kind == "managed":
            return self.filter(collector_id=bigint(scope.user_id))
        if scope.kind == "assigned":
            return self.filter(
                models.Exists(
                    CustomerAssignment.objects.filter(
                        customer_id=models.OuterRef("pk"), user_id=scope.user_id
                    )
                )
            )
        raise ValueError(f"Unknown visibility scope {scope.kind!r}.")  # never fail open


class CustomerOwnedQuerySet(models.QuerySet):
    """Rows that belong to one customer, reached through `customer_field`."""

    customer_field = "customer"

    def visible_to(self, scope):
        if scope.kind == "all":
            return self
        visible = Customer.objects.visible_to(scope).values("pk")
        return self.filter(**{f"{self.customer_field}__in": visible})


def CustomerOwnedManager(queryset=CustomerOwnedQuerySet):  # noqa: N802 -- like TenantManager
    """The tenant manager of a customer-owned model, with `visible_to(scope)`."""
    return TenantManager(_manager_class=models.Manager.from_queryset(queryset))


class Customer(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    number = models.CharField("customer number", max_length=40)
    name = models.CharField("company name", max_length=200)
    organisation_number = models.CharField(max_length=40, blank=True)
    address = models.TextField("postal address", blank=True)
    delivery_address = models.TextField(blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +4722334455.")
    notes = models.TextField(blank=True)
    collector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The user who manages this customer's collection.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    anonymised_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = CustomerOwnedManager(CustomerQuerySet)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "number"], name="customer_number_per_entity")
        ]
        indexes = [
            models.Index(fields=["entity", "name"], name="customer_entity_name"),
            # A collector's list sorted by name straight from the index (migration 0003;
            # 0004 adds the PostgreSQL-only search indexes).
            models.Index(
                fields=["entity", "collector", "name", "id"], name="customer_collector_name"
            ),
        ]

    def __str__(self):
        return f"{self.number} {self.name}"


class CustomerNameWord(models.Model):
    """One word of a customer's name: what the name search reads on PostgreSQL.

    The words are the lexemes of `to_tsvector('simple', name)` ("Fjell-Sol AS" gives
    fjell-sol, fjell, sol, as), the ones the full-text search matched before. A search
    word is a range of this table's btree (entity, word, sort name, customer): the page
    and its capped count are read from the index alone, already in name order within one
    word, instead of fetching and sorting thousands of customers
    (`customers.selectors.NameSearch`).

    PostgreSQL keeps the rows in step with the customers by a trigger (migration 0005):
    a customer created (also by `bulk_create`), renamed, anonymised, moved to another
    collector or deleted rewrites or removes its words in the same statement, whatever
    code path wrote it. The model is here for the schema only; nothing writes it through
    Django, and on SQLite (development) the table stays empty and the search uses its
    fallback.
    """

    # The relations are plain columns to the database (no constraint, no index of their
    # own): the trigger removes a deleted customer's words, so Django's delete collector
    # has nothing to do here (DO_NOTHING: no query per deleted customer), and a foreign
    # key check on every word written would only repeat what the trigger knows.
    entity = models.ForeignKey(
        "accounts.Entity",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the primary key (customer, word) serves it
        related_name="+",
    )
    collector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
    )
    # Compared byte-wise on PostgreSQL (COLLATE "C", migration 0005), so that the words
    # starting with "berg" are the range ["berg", "berh").
    word = models.TextField()
    # UPPER(name): the order of the search results (customers.views.SEARCH_SORTS).
    sort_name = models.TextField()
    # One row per (customer, word); its index also finds a customer's words (the
    # trigger's delete, a search's second word).
    pk = models.CompositePrimaryKey("customer", "word")

    objects = TenantManager()

    def __str__(self):
        return f"{self.word} ({self.customer_id})"


class CustomerAssignment(models.Model):
    """A user assigned to a customer (sales, sales administration, guest)."""

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_assignments"
    )

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "user"], name="assignment_customer_user")
        ]
        indexes = [models.Index(fields=["user", "customer"], name="assignment_user_customer")]

    def __str__(self):
        return f"{self.user} on {self.customer}"


class ContactPerson(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    title = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True)
    notes = models.TextField(blank=True)

    objects = CustomerOwnedManager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name


class Invoice(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=40)
    issued_on = models.DateField()
    due_on = models.DateField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    amount_paid = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    currency = models.CharField(max_length=3, default="NOK")
    text = models.TextField(blank=True)

    objects = CustomerOwnedManager()

    class Meta:
        ordering = ["-issued_on", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "number"], name="invoice_number_per_entity")
        ]

    def __str__(self):
        return f"Invoice {self.number}"

    @property
    def outstanding(self):
        return self.amount - self.amount_paid


class AccessGroup(models.Model):
    """A need-to-know group of users of one entity."""

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="access_groups"
    )

    objects = TenantManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "name"], name="access_group_name_per_entity")
        ]

    def __str__(self):
        return self.name


class Secret(BoundEncryptedColumn, models.Model):
    """A note on a customer card, encrypted at rest, readable by chosen access groups."""

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="secrets")
    title = models.CharField(max_length=200)
    encrypted_body = models.TextField()
    groups = models.ManyToManyField(AccessGroup, related_name="secrets")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = CustomerOwnedManager()
    # The body is bound to this row of its entity (security.crypto).
    encrypted_column = "encrypted_body"
    binding_owner = "entity_id"

    class Meta:
        ordering = ["title", "pk"]

    def __str__(self):
        return self.title

    @property
    def body(self):
        """The plain text; security.crypto.DecryptionError if the stored value is not this
        row's (copied from another row, changed, or under a key no longer configured)."""
        return self.plain().decode("utf-8")

    @body.setter
    def body(self, text):
        self.set_body(text)

    def set_body(self, text):
        self.set_plain(text.encode("utf-8"))


# --- The link grant ---------------------------------------------------------------------
# A link emailed to a customer (a document, an invoice PDF, the consent page, the customer's
# page): only the token's hash is stored; expiry, uses and revocation decide whether it
# works, and every access is logged. Documents and consent both make and check links, so
# the grant lives here, below both (customers.links).


class CustomerLink(models.Model):
    class Kind(models.TextChoices):
        DOCUMENT = "document", "Document"
        INVOICE_PDF = "invoice_pdf", "Invoice PDF"
        CONSENT = "consent", "Consent page"
        INTERACTIVE = "interactive", "Customer page"

    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="links"
    )
    contact = models.ForeignKey(
        "customers.ContactPerson",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="links",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # A document link's file. Named, not imported: documents sits above customers. SET_NULL:
    # deleting a document kills its links but keeps their record and use log.
    document = models.ForeignKey(
        "documents.Document",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="links",
    )
    invoice = models.ForeignKey(
        "customers.Invoice", on_delete=models.CASCADE, null=True, blank=True, related_name="links"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = CustomerOwnedManager()

    class Meta:
        # Made by the documents app before the link grant moved here; the name is kept.
        db_table = "documents_customerlink"
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.get_kind_display()} link {self.pk}"


class LinkUse(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    link = models.ForeignKey(CustomerLink, on_delete=models.CASCADE, related_name="use_log")
    used_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # False for an access that spends no use: the customer's page opened, which they come
    # back to after each action. (db_default: the one-statement paths insert without it.)
    counted = models.BooleanField(default=True, db_default=True)

    objects = TenantManager()

    class Meta:
        db_table = "documents_linkuse"
        ordering = ["-used_at", "-pk"]

    def __str__(self):
        return f"Use of link {self.link_id} at {self.used_at:%Y-%m-%d %H:%M}"
