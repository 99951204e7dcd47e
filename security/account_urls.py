from django.urls import path

from security import account_views as views

urlpatterns = [
    path("security/", views.AccountSecurityView.as_view(), name="account-security"),
    path("2fa/setup/", views.TwoFactorSetupView.as_view(), name="2fa-setup"),
    path("2fa/verify/", views.TwoFactorVerifyView.as_view(), name="2fa-verify"),
    path("2fa/backup-codes/", views.BackupCodesView.as_view(), name="2fa-backup-codes"),
    path("2fa/remove/", views.TwoFactorRemoveView.as_view(), name="2fa-remove"),
    path("verify-address/", views.VerifyAddressView.as_view(), name="verify-address"),
]
