"""Customers: the companies an entity invoices. Every row belongs to exactly one entity."""

from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantManager


class Customer(models.Model):
    entity = models.ForeignKey("accounts.Entity", on_delete=models.PROTECT, related_name="+")
    number = models.CharField("customer number", max_length=40)
    name = models.CharField("company name", max_length=200)
    organisation_number = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantManager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "number"], name="customer_number_per_entity")
        ]

    def __str__(self):
        return f"{self.number} {self.name}"
