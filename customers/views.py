"""Customer pages. Every customer read starts from `visible_to(scope)` (customers.selectors)."""

from contextlib import nullcontext

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.db.models.functions import Upper
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import DetailView, TemplateView

from accounts.access import MemberRequiredMixin, ScopedObjectMixin
from accounts.roles import Capability
from accounts.tenancy import bigint
from core.db import planned_for_their_values
from customers import services
from customers.forms import (
    AccessGroupForm,
    ContactForm,
    CustomerForm,
    CustomerSearchForm,
    SecretForm,
)
from customers.mixins import CustomerMixin, RefusedOnceAnonymised
from customers.models import (
    AccessGroup,
    ContactPerson,
    Customer,
    CustomerAssignment,
    Invoice,
    Secret,
)
from customers.paging import capped_page, capped_page_of
from customers.pdf import invoice_copy_context, invoice_copy_response
from customers.selectors import (
    collectors_of_visible_customers,
    name_search,
    readable_secrets,
    search_customers,
    visible_customers,
    with_balance,
)
from security.audit import details_for
from security.models import AuditEvent

# Search results by name are sorted without regard to case. On PostgreSQL the words table
# holds this order (CustomerNameWord.sort_name = UPPER(name)) and a search by words reads
# its page from there (`name_search`); the page's customers are then sorted again here,
# 51 rows. For the other searches (a digit in them: numbers too), an order that no index
# gives also keeps PostgreSQL from walking the whole (entity, name) index in the hope of
# finding 50 matches early (matches of a common word cluster together: one search read
# 180,000 rows that way); it reads the matches from the search indexes and sorts them.
SEARCH_SORTS = {
    "name": (Upper("name"), "pk"),
    "-name": (Upper("name").desc(), "-pk"),
}


def list_rows(customers, sort):
    """The list's rows: only the columns they show (customers/templatetags/customer_list.py;
    loading whole customers and collectors cost milliseconds a page) and the balance."""
    return (
        with_balance(customers)
        .select_related("collector")
        .only("number", "name", "organisation_number", "collector__full_name", "collector__email")
        .order_by(*sort)
    )


class CustomerListView(MemberRequiredMixin, TemplateView):
    """The customer list: search, filter, sort, 50 a page, a count capped at 1,000."""

    template_name = "customers/list.html"
    required_capability = Capability.VIEW_CUSTOMERS

    def get_context_data(self, **kwargs):
        form = CustomerSearchForm(
            self.request.GET or None, collectors=collectors_of_visible_customers(self.request)
        )
        customers = visible_customers(self.request)
        sort = CustomerSearchForm.SORTS["name"]
        searching = False
        by_words = None
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            sort_key = data["sort"] or "name"
            sort = CustomerSearchForm.SORTS.get(sort_key, sort)
            if data["q"].strip():
                searching = True
                if sort_key in SEARCH_SORTS:
                    by_words = name_search(
                        self.request,
                        data["q"],
                        collector_id=data["collector"],
                        descending=sort_key.startswith("-"),
                    )
                if by_words is None:
                    customers = search_customers(customers, data["q"])
                sort = SEARCH_SORTS.get(sort_key, sort)
            if data["collector"]:
                customers = customers.filter(collector_id=bigint(data["collector"]))
        elif form.is_bound:
            customers = customers.none()
        rows = list_rows(customers, sort)
        requested = self.request.GET.get("page")
        if by_words is not None:
            # The page's ids and the count come from the words table, which applies the
            # role scope and the collector filter itself; the customers are then read by
            # id (in the entity), in the same order. The role's condition repeated on
            # this query made a generic plan walk a collector's every customer (12 ms).
            in_entity = Customer.objects.all()
            page = capped_page_of(
                by_words.count,
                lambda offset, limit: list(
                    list_rows(in_entity.filter(pk__in=by_words.ids(offset, limit)), sort)
                ),
                requested,
            )
        else:
            # A search is planned for its words; a list reuses its prepared plan.
            with planned_for_their_values() if searching else nullcontext():
                page = capped_page(rows, customers, requested)
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(
            form=form,
            page=page,
            query=query.urlencode(),
            can_edit=self.request.tenancy.can(Capability.EDIT_CUSTOMERS),
            **kwargs,
        )


class CustomerCardView(CustomerMixin, DetailView):
    template_name = "customers/card_overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.card_context(self.object))
        context["assigned"] = [
            a.user
            for a in CustomerAssignment.objects.filter(customer=self.object).select_related("user")
        ]
        return context


class CustomerInvoicesView(CustomerMixin, DetailView):
    template_name = "customers/card_invoices.html"
    tab = "invoices"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.card_context(self.object))
        context["invoices"] = self.object.invoices.prefetch_related("actions")
        return context


class CustomerSecretsView(RefusedOnceAnonymised, CustomerMixin, DetailView):
    template_name = "customers/card_secrets.html"
    tab = "secrets"
    refused_methods = {"POST"}  # its (deleted) secrets can be looked at, none added

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.card_context(self.object))
        context["secrets"] = readable_secrets(self.object, self.request.user).prefetch_related(
            "groups"
        )
        context["form"] = kwargs.get("form") or SecretForm(groups=self.my_groups())
        return context

    def my_groups(self):
        return AccessGroup.objects.filter(members=self.request.user)

    def post(self, request, *args, **kwargs):
        self.object = self.get_object()
        if not request.tenancy.can(Capability.EDIT_CUSTOMERS):
            raise PermissionDenied("Your role cannot add secrets.")
        form = SecretForm(request.POST, groups=self.my_groups())
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        try:
            services.create_secret(
                self.object,
                title=form.cleaned_data["title"],
                body=form.cleaned_data["body"],
                groups=list(form.cleaned_data["groups"]),
                actor=request.user,
                request=request,
            )
        except services.AnonymisationRefused as refusal:
            return refused(request, refusal, self.object.pk)
        messages.success(request, "The secret was saved.")
        return redirect("customer-secrets", pk=self.object.pk)


class CustomerHistoryView(CustomerMixin, DetailView):
    template_name = "customers/card_history.html"
    tab = "history"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.card_context(self.object))
        events = AuditEvent.objects.filter(
            entity=self.request.tenancy.entity,
            target_type="customers.customer",
            target_id=str(self.object.pk),
        )[:200]
        # A secret's title only for the members of its groups, as on the Secrets tab.
        mine = set(
            AccessGroup.objects.filter(members=self.request.user).values_list("pk", flat=True)
        )
        context["events"] = [(event, details_for(event, mine)) for event in events]
        return context


class SecretRevealView(ScopedObjectMixin, View):
    """Show one secret's body to a member of one of its groups; audited."""

    model = Secret
    required_capability = Capability.VIEW_CUSTOMERS
    http_method_names = ["post"]

    def get_scoped_queryset(self):
        my_groups = AccessGroup.objects.filter(members=self.request.user)
        return (
            super()
            .get_scoped_queryset()
            .filter(groups__in=my_groups)
            .distinct()
            .select_related("customer")
        )

    def post(self, request, pk):
        secret = self.get_object()
        try:
            body = services.reveal_secret(secret, actor=request.user, request=request)
            context = {"secret": secret, "body": body}
        except services.UnreadableSecret as unreadable:
            context = {"secret": secret, "unreadable": unreadable.message}
        response = render(request, "customers/secret_reveal.html", context)
        response["Cache-Control"] = "no-store"
        return response


def refused(request, refusal, customer_pk):
    """A write the customer's state refused (anonymised meanwhile): said on its card."""
    messages.error(request, refusal.message)
    return redirect("customer-detail", pk=customer_pk)


class CustomerEditMixin:
    template_name = "customers/customer_form.html"

    def page(self, form, customer=None):
        return render(self.request, self.template_name, {"form": form, "customer": customer})

    def handle(self, form):
        if not form.is_valid():
            return self.page(form, form.instance if form.instance.pk else None)
        try:
            customer = services.save_customer(form, actor=self.request.user, request=self.request)
        except services.AnonymisationRefused as refusal:
            return refused(self.request, refusal, form.instance.pk)
        if not visible_customers(self.request).filter(pk=customer.pk).exists():
            # E.g. a restricted collector handed the customer to a colleague.
            messages.success(
                self.request, f"{customer.name} was saved; it is no longer in your view."
            )
            return redirect("customer-list")
        messages.success(self.request, f"{customer.name} was saved.")
        return redirect("customer-detail", pk=customer.pk)


class CustomerCreateView(CustomerEditMixin, MemberRequiredMixin, View):
    required_capability = Capability.EDIT_CUSTOMERS

    def get(self, request):
        return self.page(CustomerForm(entity=request.tenancy.entity))

    def post(self, request):
        return self.handle(CustomerForm(request.POST, entity=request.tenancy.entity))


class CustomerEditView(RefusedOnceAnonymised, CustomerEditMixin, CustomerMixin, View):
    required_capability = Capability.EDIT_CUSTOMERS

    def get(self, request, pk):
        return self.page(
            CustomerForm(instance=self.get_object(), entity=request.tenancy.entity),
            self.get_object(),
        )

    def post(self, request, pk):
        form = CustomerForm(request.POST, instance=self.get_object(), entity=request.tenancy.entity)
        return self.handle(form)


class ContactCreateView(RefusedOnceAnonymised, CustomerMixin, View):
    required_capability = Capability.EDIT_CUSTOMERS
    template_name = "customers/contact_form.html"

    def get(self, request, pk):
        return render(
            request, self.template_name, {"form": ContactForm(), "customer": self.get_object()}
        )

    def post(self, request, pk):
        customer = self.get_object()
        form = ContactForm(request.POST)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "customer": customer})
        try:
            services.save_contact(form, customer, actor=request.user, request=request)
        except services.AnonymisationRefused as refusal:
            return refused(request, refusal, customer.pk)
        messages.success(request, "The contact was saved.")
        return redirect("customer-contacts", pk=customer.pk)


class ContactEditView(RefusedOnceAnonymised, ScopedObjectMixin, View):
    model = ContactPerson
    required_capability = Capability.EDIT_CUSTOMERS
    template_name = "customers/contact_form.html"

    def get_scoped_queryset(self):
        return super().get_scoped_queryset().select_related("customer")

    def get(self, request, pk):
        contact = self.get_object()
        return render(
            request,
            self.template_name,
            {"form": ContactForm(instance=contact), "customer": contact.customer},
        )

    def post(self, request, pk):
        contact = self.get_object()
        form = ContactForm(request.POST, instance=contact)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "customer": contact.customer})
        try:
            _, withdrawn = services.save_contact(
                form, contact.customer, actor=request.user, request=request
            )
        except services.AnonymisationRefused as refusal:
            return refused(request, refusal, contact.customer_id)
        messages.success(
            request,
            "The contact was saved."
            + (
                f" The new email address ends {withdrawn} link(s) sent to the old one; send "
                "new ones if needed."
                if withdrawn
                else ""
            ),
        )
        return redirect("customer-contacts", pk=contact.customer_id)


class AccessGroupListView(MemberRequiredMixin, TemplateView):
    template_name = "customers/access_groups.html"
    required_capability = Capability.MANAGE_USERS

    def get_context_data(self, **kwargs):
        groups = AccessGroup.objects.prefetch_related(
            Prefetch("members", to_attr="people")
        ).order_by("name")
        form = kwargs.pop("form", None) or AccessGroupForm(entity=self.request.tenancy.entity)
        return super().get_context_data(groups=groups, form=form, **kwargs)

    def post(self, request):
        form = AccessGroupForm(request.POST, entity=request.tenancy.entity)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        group = services.save_access_group(form, actor=request.user, request=request)
        messages.success(request, f"The group {group.name} was created.")
        return redirect("access-groups")


class AccessGroupEditView(ScopedObjectMixin, View):
    model = AccessGroup
    required_capability = Capability.MANAGE_USERS
    template_name = "customers/access_group_form.html"

    def get(self, request, pk):
        group = self.get_object()
        form = AccessGroupForm(instance=group, entity=request.tenancy.entity)
        return render(request, self.template_name, {"form": form, "group": group})

    def post(self, request, pk):
        group = self.get_object()
        form = AccessGroupForm(request.POST, instance=group, entity=request.tenancy.entity)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "group": group})
        services.save_access_group(form, actor=request.user, request=request)
        messages.success(request, f"The group {group.name} was saved.")
        return redirect("access-groups")


class InvoiceCopyView(ScopedObjectMixin, View):
    """An invoice copy from the invoice and the customer's current data (printable, PDF)."""

    model = Invoice
    required_capability = Capability.VIEW_CUSTOMERS

    def get_scoped_queryset(self):
        return super().get_scoped_queryset().select_related("customer", "entity")

    def get(self, request, pk):
        invoice = self.get_object()
        if request.GET.get("format") == "pdf":
            return invoice_copy_response(invoice, f"invoice-{invoice.number}.pdf")
        return render(request, "customers/invoice_copy.html", invoice_copy_context(invoice))
