from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config import views
from consent import urls as consent_urls
from customers import urls as customer_urls
from documents import urls as document_urls

urlpatterns = [
    # Customers' links first: the busiest public URLs, and no staff route starts with
    # l/ or c/, so resolving them need not try every staff route before them.
    path("", include(document_urls.link_urlpatterns)),
    path("", include(consent_urls.link_urlpatterns)),
    path("", include("security.signin_urls")),
    path("", include("portal.urls")),
    path("customers/", include("customers.urls")),
    path("audit/", include("security.urls")),
    path("settings/", include("security.settings_urls")),
    path("settings/", include(customer_urls.settings_urlpatterns)),
    path("account/", include("security.account_urls")),
    path("", include("consent.urls")),
    path("", include("documents.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Browsers ask for /favicon.ico on pages without an icon link (public link pages).
    path(
        "favicon.ico", RedirectView.as_view(url=settings.STATIC_URL + "favicon.svg", permanent=True)
    ),
    path("admin/", admin.site.urls),
]
