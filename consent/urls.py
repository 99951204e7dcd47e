from django.urls import path

from consent import card_views, views

urlpatterns = [
    path(
        "customers/<int:pk>/contacts/",
        card_views.CustomerContactsView.as_view(),
        name="customer-contacts",
    ),
    path(
        "customers/<int:pk>/anonymise/",
        card_views.AnonymiseView.as_view(),
        name="customer-anonymise",
    ),
    path(
        "customers/contacts/<int:pk>/consent/",
        views.ContactConsentView.as_view(),
        name="contact-consent",
    ),
    path(
        "customers/contacts/<int:pk>/consent/send-link/",
        views.SendConsentLinkView.as_view(),
        name="contact-consent-link",
    ),
    path(
        "customers/contacts/<int:pk>/consent-form/",
        views.ConsentFormReportView.as_view(),
        name="consent-form",
    ),
    path("settings/privacy/", views.PrivacySettingsView.as_view(), name="privacy-settings"),
    path(
        "settings/privacy/processors/<int:pk>/remove/",
        views.ProcessorRemoveView.as_view(),
        name="processor-remove",
    ),
]

# The customer's self-service page, first in config.urls with the document links: the
# link's own address (with its token) and the clean one its session moves to.
link_urlpatterns = [
    path("c/open/<str:handle>/", views.SelfServiceView.as_view(), name="consent-self-service-open"),
    path("c/<str:token>/", views.SelfServiceView.as_view(), name="consent-self-service"),
]
