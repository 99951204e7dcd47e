import csv
import json

from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.views.generic import DetailView, TemplateView

from accounts.access import MemberRequiredMixin, ScopedObjectMixin
from accounts.roles import Capability
from security.audit import details_for
from security.forms import AuditFilterForm
from security.models import AuditEvent


class AuditAccessMixin:
    required_capability = Capability.VIEW_AUDIT

    def visible_events(self):
        return AuditEvent.objects.visible_to(self.request.tenancy)

    def reader_groups(self):
        """The ids of the access groups the viewer is a member of (in the current entity):
        what of an event's restricted details they read (`security.audit.details_for`)."""
        return set(self.request.user.access_groups.values_list("pk", flat=True))

    def filtered_events(self):
        """(form, events): the events matching valid filters, or none while invalid."""
        events = self.visible_events()
        actions = events.order_by("action").values_list("action", flat=True).distinct()
        form = AuditFilterForm(self.request.GET or None, actions=actions)
        if form.is_bound and not form.is_valid():
            return form, events.none()
        if form.is_bound:
            events = form.filter(events)
        return form, events.select_related("entity", "entity_group")


class AuditListView(AuditAccessMixin, MemberRequiredMixin, TemplateView):
    template_name = "security/audit_list.html"

    def get_context_data(self, **kwargs):
        form, events = self.filtered_events()
        page = Paginator(events, 50).get_page(self.request.GET.get("page"))
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(form=form, page=page, query=query.urlencode(), **kwargs)


def _csv_safe(value):
    """Spreadsheets run cells starting with these as formulas (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


class AuditExportView(AuditAccessMixin, MemberRequiredMixin, TemplateView):
    template_name = "security/audit_list.html"

    def get(self, request, *args, **kwargs):
        form, events = self.filtered_events()
        if form.is_bound and not form.is_valid():
            # Show the same page with the errors next to the fields.
            page = Paginator(events, 50).get_page(1)
            return self.render_to_response(self.get_context_data(form=form, page=page))
        writer = csv.writer(_Echo())
        header = ["time (UTC)", "actor", "action", "entity", "target", "ip", "data"]
        # Read now: the rows are streamed after the request's tenant scope has ended.
        reader_groups = self.reader_groups()

        def rows():
            yield writer.writerow(header)
            for event in events.iterator(chunk_size=2000):
                scope = event.entity or event.entity_group
                yield writer.writerow(
                    [
                        _csv_safe(v)
                        for v in (
                            event.created_at.isoformat(),
                            event.actor_label,
                            event.action,
                            scope.name if scope else "",
                            event.target_label,
                            event.ip,
                            json.dumps(details_for(event, reader_groups), sort_keys=True),
                        )
                    ]
                )

        slug = request.tenancy.entity.slug
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{slug}.csv"'
        return response


class AuditDetailView(AuditAccessMixin, ScopedObjectMixin, DetailView):
    model = AuditEvent
    template_name = "security/audit_detail.html"
    context_object_name = "event"

    def get_scoped_queryset(self):
        return self.visible_events()

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            details=details_for(self.object, self.reader_groups()), **kwargs
        )
