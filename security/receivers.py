"""Adapters from Django's signals: auth signals to audit records, allowlist changes to
the policy's allowlist version. No business logic here."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from security.audit import record
from security.lockouts import account_key
from security.models import AllowedNetwork, SecurityPolicy


@receiver([post_save, post_delete], sender=AllowedNetwork, dispatch_uid="allowlist_version")
def allowlist_changed(sender, instance, **kwargs):
    # Sessions that passed under the old version check their address again.
    SecurityPolicy.objects.filter(pk=instance.policy_id).update(
        networks_version=F("networks_version") + 1
    )


@receiver(user_logged_in, dispatch_uid="audit_login")
def audit_login(sender, request, user, **kwargs):
    record("auth.login.succeeded", actor=user, request=request)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        record("auth.logout", actor=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    reservation = getattr(request, "lockout_reservation", None)
    if reservation is not None and reservation.refused:
        # Refused by the lockout (the admin's login goes through authenticate() to learn
        # that): security.lockouts records the refusal, the one event of that attempt.
        return
    # Django has already masked the password in `credentials`; keep only the address.
    attempted = account_key(credentials.get("username", ""))
    # The attempt is not the account owner's act, so the user is the target, not the actor.
    target = User.objects.filter(email=attempted).first() if attempted else None
    record(
        "auth.login.failed",
        request=request,
        target=target,
        # The address typed, as the block and refusal events name it.
        target_label=attempted or None,
        data={"username": attempted},
    )
