"""The dashboard: what each role sees first (customers it may see, recent audit events)."""

from django.views.generic import TemplateView

from accounts.access import MemberRequiredMixin
from accounts.roles import Capability
from customers.selectors import visible_customers
from security.models import AuditEvent


class DashboardView(MemberRequiredMixin, TemplateView):
    template_name = "accounts/dashboard.html"

    def get_context_data(self, **kwargs):
        tenancy = self.request.tenancy
        context = super().get_context_data(**kwargs)
        if tenancy.can(Capability.VIEW_CUSTOMERS):
            context["customer_count"] = visible_customers(self.request).count()
        if tenancy.can(Capability.VIEW_AUDIT):
            context["recent_events"] = list(
                AuditEvent.objects.visible_to(tenancy).select_related("entity")[:8]
            )
        return context
