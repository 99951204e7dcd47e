from django.urls import path

from security import views

urlpatterns = [
    path("", views.AuditListView.as_view(), name="audit-list"),
    path("export.csv", views.AuditExportView.as_view(), name="audit-export"),
    path("<int:pk>/", views.AuditDetailView.as_view(), name="audit-detail"),
]
