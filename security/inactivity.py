"""Inactive accounts: activity tracking, the nightly deactivation and its warnings.

Deactivation is set-based: one UPDATE per policy that sets a limit (a user over their
effective limit is over the limit of the policy that set it), never a loop over users.
Rows are claimed with SELECT ... FOR UPDATE SKIP LOCKED, so two runs at once neither
block each other nor deactivate (and audit) the same user twice.
"""

from datetime import timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from accounts.sessions import end_sessions
from accounts.tenancy import system_code
from security.audit import record
from security.models import AuditEvent, SecurityPolicy
from security.selectors import effective_policy_for_user, users_in_scope

# Writing last_active_at at most this often keeps activity tracking off the request path.
ACTIVITY_RESOLUTION = timedelta(minutes=5)
WARNING_DAYS = 7
BATCH = 5000


def inactivity_cutoff(months, now):
    """Users whose last activity is before this are over a limit of `months`."""
    return now - relativedelta(months=months)


def is_over_limit(last_active_at, months, now):
    return months is not None and last_active_at < inactivity_cutoff(months, now)


def touch(user, now):
    """Record activity, at most once per ACTIVITY_RESOLUTION per user."""
    if now - user.last_active_at >= ACTIVITY_RESOLUTION:
        User.objects.filter(pk=user.pk).update(last_active_at=now)
        user.last_active_at = now


def _deactivate(user_ids, *, now, reason, actor=None, data=None):
    """Deactivate and end the sessions of these users; one audit event each."""
    user_ids = list(user_ids)
    if not user_ids:
        return 0
    User.objects.filter(pk__in=user_ids).update(is_active=False, deactivated_at=now)
    end_sessions(user_ids)
    emails = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "email"))
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                created_at=now,
                actor=actor,
                actor_label=actor.email if actor else "",
                action="user.deactivated",
                target_type="accounts.user",
                target_id=str(pk),
                target_label=emails.get(pk, ""),
                data={"reason": reason, **(data or {})},
            )
            for pk in user_ids
        ]
    )
    return len(user_ids)


def deactivate_inactive_users(now=None):
    """The nightly job. Returns how many users it deactivated."""
    now = now or timezone.now()
    total = 0
    with system_code():
        policies = SecurityPolicy.objects.filter(inactivity_limit_months__isnull=False)
        for policy in policies.select_related("entity", "group"):
            cutoff = inactivity_cutoff(policy.inactivity_limit_months, now)
            scope = users_in_scope(entity=policy.entity, group=policy.group)
            over = scope.filter(is_active=True, last_active_at__lt=cutoff)
            while True:
                with transaction.atomic():
                    claimed = list(
                        User.objects.filter(pk__in=over.values("pk"), is_active=True)
                        .select_for_update(skip_locked=True)
                        .values_list("pk", flat=True)[:BATCH]
                    )
                    count = _deactivate(
                        claimed,
                        now=now,
                        reason="inactivity",
                        data={
                            "limit_months": policy.inactivity_limit_months,
                            "set_by": f"{policy.owner.name} ({policy.level})",
                        },
                    )
                total += count
                if count < BATCH:
                    break
    return total


def deactivate_if_over_limit(user, now):
    """At sign-in: refuse (and deactivate) an account over its limit, job or not."""
    months = effective_policy_for_user(user).inactivity_limit_months.value
    if not is_over_limit(user.last_active_at, months, now):
        return False
    with transaction.atomic():
        claimed = list(
            User.objects.filter(pk=user.pk, is_active=True)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        _deactivate(claimed, now=now, reason="inactivity", data={"limit_months": months})
    user.is_active = False
    return True


def reactivate(user, *, actor, entity, now=None, request=None):
    now = now or timezone.now()
    # Activity restarts now; otherwise the next nightly run would deactivate them again.
    User.objects.filter(pk=user.pk).update(is_active=True, deactivated_at=None, last_active_at=now)
    user.refresh_from_db()
    record("user.reactivated", actor=actor, entity=entity, target=user, request=request, now=now)


def warn_soon_inactive_users(now=None):
    """Email users who will be deactivated within WARNING_DAYS, once per idle period."""
    now = now or timezone.now()
    sent = 0
    with system_code():
        for policy in SecurityPolicy.objects.filter(inactivity_limit_months__isnull=False):
            cutoff = inactivity_cutoff(policy.inactivity_limit_months, now)
            soon = users_in_scope(entity=policy.entity, group=policy.group).filter(
                is_active=True,
                last_active_at__gte=cutoff,
                last_active_at__lt=cutoff + timedelta(days=WARNING_DAYS),
            )
            for user in soon.exclude(inactivity_warning_sent_at__gt=F("last_active_at")):
                months = effective_policy_for_user(user).inactivity_limit_months.value
                deadline = user.last_active_at + relativedelta(months=months)
                claimed = (
                    User.objects.filter(pk=user.pk)
                    .exclude(inactivity_warning_sent_at__gt=F("last_active_at"))
                    .update(inactivity_warning_sent_at=now)
                )
                if not claimed:
                    continue  # another run sent it
                send_mail(
                    "Your account will be deactivated soon",
                    f"Hello {user},\n\nYou have not signed in for a while. Unless you sign in "
                    f"before {timezone.localtime(deadline):%Y-%m-%d %H:%M}, your account will "
                    "be deactivated and an administrator will have to reactivate it.\n",
                    settings.DEFAULT_FROM_EMAIL,
                    [user.email],
                )
                sent += 1
    return sent
