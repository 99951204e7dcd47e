from django.urls import path

from customers import import_views, views

urlpatterns = [
    path("", views.CustomerListView.as_view(), name="customer-list"),
    path("new/", views.CustomerCreateView.as_view(), name="customer-create"),
    path("import/", import_views.CustomerImportView.as_view(), name="customer-import"),
    path(
        "import/confirm/",
        import_views.CustomerImportConfirmView.as_view(),
        name="customer-import-confirm",
    ),
    path("<int:pk>/", views.CustomerCardView.as_view(), name="customer-detail"),
    path("<int:pk>/edit/", views.CustomerEditView.as_view(), name="customer-edit"),
    path("<int:pk>/contacts/new/", views.ContactCreateView.as_view(), name="contact-create"),
    path("<int:pk>/invoices/", views.CustomerInvoicesView.as_view(), name="customer-invoices"),
    path("<int:pk>/secrets/", views.CustomerSecretsView.as_view(), name="customer-secrets"),
    path("<int:pk>/history/", views.CustomerHistoryView.as_view(), name="customer-history"),
    path("invoices/<int:pk>/copy/", views.InvoiceCopyView.as_view(), name="invoice-copy"),
    path("contacts/<int:pk>/edit/", views.ContactEditView.as_view(), name="contact-edit"),
    path("secrets/<int:pk>/reveal/", views.SecretRevealView.as_view(), name="secret-reveal"),
]

# Mounted under /settings/ (config/urls.py).
settings_urlpatterns = [
    path("access-groups/", views.AccessGroupListView.as_view(), name="access-groups"),
    path("access-groups/<int:pk>/", views.AccessGroupEditView.as_view(), name="access-group-edit"),
]
