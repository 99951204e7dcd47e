"""The customer card's tabs that consent owns: the contacts with their consents, and the
GDPR anonymisation (preflight, then the confirmed, irreversible erasure)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import DetailView

from accounts.roles import Capability
from consent import anonymisation
from consent.services import consent_matrix, purposes_for
from customers.mixins import CustomerMixin
from customers.models import ContactPerson
from customers.selectors import visible_customers


class CustomerContactsView(CustomerMixin, DetailView):
    template_name = "customers/card_contacts.html"
    tab = "contacts"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.card_context(self.object))
        contacts = list(ContactPerson.objects.filter(customer=self.object))
        purposes = purposes_for(self.request.tenancy.entity)
        matrix = consent_matrix(contacts, purposes)
        context["purposes"] = purposes
        context["rows"] = [
            {"contact": c, "consents": [matrix[c.pk][p.pk] for p in purposes]} for c in contacts
        ]
        return context


class AnonymiseView(CustomerMixin, View):
    """Preflight (balance, contacts, secrets, mentions elsewhere), then the confirmed,
    irreversible anonymisation."""

    required_capability = Capability.EDIT_CUSTOMERS
    template_name = "customers/anonymise.html"

    def page(self, customer, error=None):
        context = self.card_context(customer)
        context.update(
            check=anonymisation.preflight(customer, visible_customers(self.request)), error=error
        )
        return render(self.request, self.template_name, context)

    def get(self, request, pk):
        customer = self.get_object()
        if customer.anonymised_at:
            messages.info(request, "This customer is already anonymised.")
            return redirect("customer-detail", pk=customer.pk)
        return self.page(customer)

    def post(self, request, pk):
        customer = self.get_object()
        try:
            anonymisation.anonymise(
                customer.pk,
                confirmation=request.POST.get("confirm_number", ""),
                actor=request.user,
                request=request,
            )
        except anonymisation.AnonymisationRefused as refused:
            return self.page(customer, error=refused.message)
        messages.success(request, "The customer was anonymised. This cannot be undone.")
        return redirect("customer-detail", pk=customer.pk)
