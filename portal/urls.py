from django.urls import path

from portal import views

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
]
