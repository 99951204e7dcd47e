"""Adapters from Django's model signals. No business logic here."""

from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Entity, User
from core import cache
from customers.models import Customer
from customers.selectors import entity_collectors_key


@receiver([post_save, post_delete], sender=Customer, dispatch_uid="entity_collectors")
def customer_changed(sender, instance, **kwargs):
    # The collector filter's choices may have changed.
    cache.delete(entity_collectors_key(instance.entity_id))


# What the collector filter shows of a person.
SHOWN_FIELDS = {"full_name", "email"}


@receiver(post_save, sender=User, dispatch_uid="entity_collectors_person")
def person_changed(sender, instance, created, update_fields=None, **kwargs):
    if created or (update_fields is not None and not SHOWN_FIELDS & set(update_fields)):
        return  # a sign-in's last_login, a new password: the filter shows neither
    # A collector works in the entities they are a member of, directly or by group.
    entity_ids = (
        Entity.objects.filter(Q(memberships__user=instance) | Q(group__memberships__user=instance))
        .values_list("pk", flat=True)
        .distinct()
    )
    cache.delete_many([entity_collectors_key(pk) for pk in entity_ids])
