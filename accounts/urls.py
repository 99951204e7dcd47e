from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("accounts/login/", views.EmailLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch-entity/", views.switch_entity, name="switch-entity"),
    path("", views.DashboardView.as_view(), name="dashboard"),
]
