"""The customer card's common ground, for every app's pages about one customer: the
customer the request may see (else 404) with the card's context, and the refusal of pages
that would fill in an anonymised customer's personal data again."""

from django.contrib import messages
from django.shortcuts import redirect

from accounts.access import ScopedObjectMixin
from accounts.roles import Capability
from customers.models import ContactPerson, Customer
from customers.selectors import ledger_balance, request_scope, why_visible


class CustomerMixin(ScopedObjectMixin):
    """A customer the request may see (else 404), with the card's common context."""

    model = Customer
    required_capability = Capability.VIEW_CUSTOMERS
    context_object_name = "customer"
    tab = "overview"

    def get_scoped_queryset(self):
        return super().get_scoped_queryset().select_related("collector")

    def card_context(self, customer):
        tenancy = self.request.tenancy
        return {
            "menu_contacts": list(ContactPerson.objects.filter(customer=customer)[:20]),
            "customer": customer,
            "tab": self.tab,
            "why": why_visible(request_scope(self.request), customer),
            "can_edit": tenancy.can(Capability.EDIT_CUSTOMERS),
            "balance": ledger_balance(customer),
        }


class RefusedOnceAnonymised:
    """Pages that fill in a customer's personal data or send it something: an anonymised
    customer stays anonymised (as the CSV import refuses to fill it in again). The object
    is the customer, or one of its contacts."""

    refused_methods = {"GET", "POST"}

    def refuse_object(self, obj):
        customer = getattr(obj, "customer", obj)
        if customer.anonymised_at is None or self.request.method not in self.refused_methods:
            return None
        messages.error(
            self.request,
            "This customer is anonymised: its personal data cannot be filled in again, and "
            "nothing is sent to it.",
        )
        return redirect("customer-detail", pk=customer.pk)
