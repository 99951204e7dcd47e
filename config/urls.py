from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("", include("accounts.urls")),
    path("customers/", include("customers.urls")),
    path("audit/", include("security.urls")),
    path("settings/", include("security.settings_urls")),
    path("account/", include("security.account_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
