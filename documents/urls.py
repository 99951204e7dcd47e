from django.urls import path

from documents import public_views, staff_views

# Customers' links. config.urls lists them first, so the busiest public URLs resolve
# without trying every staff route before them. Each page has two addresses: the link's
# own, with its token (what emails carry; a GET there exchanges the token for a link-bound
# session, customers.link_session), and the clean one the customer stays on, with the
# session's handle. No token is 4 characters long, so "open" is never one.
link_urlpatterns = [
    path("l/open/<str:handle>/", public_views.LinkView.as_view(), name="customer-link-open"),
    path(
        "l/open/<str:handle>/renew/",
        public_views.RenewLinkView.as_view(),
        name="customer-link-open-renew",
    ),
    path(
        "l/open/<str:handle>/invoices/<int:invoice_id>/pdf/",
        public_views.InteractiveInvoicePdfView.as_view(),
        name="customer-link-open-invoice-pdf",
    ),
    path("l/<str:token>/", public_views.LinkView.as_view(), name="customer-link"),
    path("l/<str:token>/renew/", public_views.RenewLinkView.as_view(), name="customer-link-renew"),
    path(
        "l/<str:token>/invoices/<int:invoice_id>/pdf/",
        public_views.InteractiveInvoicePdfView.as_view(),
        name="customer-link-invoice-pdf",
    ),
]

urlpatterns = [
    path(
        "customers/<int:pk>/documents/",
        staff_views.CustomerDocumentsView.as_view(),
        name="customer-documents",
    ),
    path(
        "customers/<int:pk>/reminder/",
        staff_views.SendReminderView.as_view(),
        name="customer-reminder",
    ),
    path(
        "customers/documents/<int:pk>/delete/",
        staff_views.DocumentDeleteView.as_view(),
        name="document-delete",
    ),
    path(
        "customers/links/<int:pk>/revoke/", staff_views.LinkRevokeView.as_view(), name="link-revoke"
    ),
    path(
        "customers/links/<int:pk>/accesses/",
        staff_views.LinkAccessView.as_view(),
        name="link-accesses",
    ),
    path(
        "settings/reminder-preview/",
        staff_views.ReminderPreviewView.as_view(),
        name="reminder-preview",
    ),
]
