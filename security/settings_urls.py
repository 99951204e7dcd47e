from django.urls import path

from security import settings_views as views

urlpatterns = [
    path("security/", views.EntitySecuritySettingsView.as_view(), name="security-settings"),
    path(
        "security/multi-level/",
        views.GroupSecuritySettingsView.as_view(),
        name="security-settings-group",
    ),
    path("security/networks/add/", views.NetworkAddView.as_view(), name="network-add"),
    path(
        "security/networks/<int:pk>/remove/",
        views.NetworkRemoveView.as_view(),
        name="network-remove",
    ),
    path("users/", views.UserListView.as_view(), name="user-list"),
    path("users/<int:pk>/rules/", views.PolicyExplainerView.as_view(), name="user-rules"),
    path(
        "users/<int:pk>/reactivate/",
        views.UserReactivateView.as_view(),
        name="user-reactivate",
    ),
    path("users/<int:pk>/unblock/", views.UserUnblockView.as_view(), name="user-unblock"),
    path(
        "users/<int:pk>/reset-2fa/",
        views.UserResetTwoFactorView.as_view(),
        name="user-reset-2fa",
    ),
    path("ip-blocks/", views.IpBlocksView.as_view(), name="ip-blocks"),
]
