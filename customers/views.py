from django.core.paginator import Paginator
from django.views.generic import DetailView, TemplateView

from accounts.access import MemberRequiredMixin, ScopedObjectMixin
from accounts.roles import Capability
from customers.models import Customer


class CustomerListView(MemberRequiredMixin, TemplateView):
    template_name = "customers/list.html"
    required_capability = Capability.VIEW_CUSTOMERS

    def get_context_data(self, **kwargs):
        page = Paginator(Customer.objects.all(), 50).get_page(self.request.GET.get("page"))
        return super().get_context_data(page=page, **kwargs)


class CustomerDetailView(ScopedObjectMixin, DetailView):
    model = Customer
    template_name = "customers/detail.html"
    required_capability = Capability.VIEW_CUSTOMERS
