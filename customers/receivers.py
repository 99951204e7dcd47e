"""Adapters from Django's model signals. No business logic here."""

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from customers.models import Customer
from customers.selectors import entity_collectors_key


@receiver([post_save, post_delete], sender=Customer, dispatch_uid="entity_collectors")
def customer_changed(sender, instance, **kwargs):
    # The collector filter's choices may have changed.
    cache.delete(entity_collectors_key(instance.entity_id))
