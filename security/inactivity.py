"""Inactive accounts: activity tracking, the nightly deactivation and its warnings.

Deactivation is set-based, never a loop over users: for each policy that sets a limit (a
user over their effective limit is over the limit of the policy that set it), one query
reads who is over it, then batches of BATCH of them are claimed by primary key with
SELECT ... FOR UPDATE SKIP LOCKED, re-checking under the lock that they are still active
and still over the limit. So two runs at once neither block each other nor deactivate
(and audit) the same user twice, and a user who signs in meanwhile is left alone; a user
some other transaction holds at that moment is left for the next run. On PostgreSQL a
batch is one statement (claim, deactivate, end sessions, audit one event each);
elsewhere (SQLite, in development) the same steps go through the ORM.
"""

from datetime import timedelta

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User, UserSession
from accounts.sessions import end_sessions
from accounts.tenancy import system_code
from core import emails
from security.audit import record
from security.models import AuditEvent, SecurityNotice, SecurityPolicy
from security.selectors import effective_policy_for_user, users_in_scope

# Writing last_active_at at most this often keeps activity tracking off the request path.
ACTIVITY_RESOLUTION = timedelta(minutes=5)
WARNING_DAYS = 7
TARGET_LABEL_LENGTH = AuditEvent._meta.get_field("target_label").max_length
# Users per transaction. 5,000 and 20,000 took the same time in bench/ (deactivation_job);
# the smaller batch holds fewer row locks at a time.
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


def _deactivation_event(*, now, reason, actor=None, data=None, target_id="", target_label=""):
    """The audit event of one deactivation (its target filled in by the caller)."""
    return AuditEvent(
        created_at=now,
        actor=actor,
        actor_label=actor.email if actor else "",
        action="user.deactivated",
        target_type=User._meta.label_lower,
        target_id=target_id,
        target_label=target_label[:TARGET_LABEL_LENGTH],
        data={"reason": reason, **(data or {})},
    )


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
            _deactivation_event(
                now=now,
                reason=reason,
                actor=actor,
                data=data,
                target_id=str(pk),
                target_label=emails.get(pk, ""),
            )
            for pk in user_ids
        ]
    )
    return len(user_ids)


def _deactivate_claimed(claim, *, now, reason, data):
    """PostgreSQL: claim, deactivate, end the sessions of and audit one batch in one
    statement. Returns how many users it deactivated.

    Hand-written SQL because the ORM has neither UPDATE ... RETURNING nor data-modifying
    CTEs; done through the ORM (`_deactivate`), a batch is five round trips and 5,000
    audit objects built in Python, which made the job 3 times slower than the same work
    as set-based SQL (bench/: deactivation_job). The claim is the queryset `claim`;
    table and column names come from the models' _meta.
    """
    qn = connection.ops.quote_name
    user_meta, session_meta, audit_meta = User._meta, UserSession._meta, AuditEvent._meta
    user_pk = qn(user_meta.pk.column)
    claim_sql, claim_params = claim.query.get_compiler(connection=connection).as_sql()
    # Every other column of the audit row is the same for the whole batch: take it from
    # the event `_deactivate` would create, prepared as the ORM prepares an INSERT, so
    # the rows are the same whichever path wrote them.
    template = _deactivation_event(now=now, reason=reason, data=data)
    columns, values, value_params = [], [], []
    for field in audit_meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(qn(field.column))
        if field.name == "target_id":
            values.append(f"CAST(deactivated.id AS {field.cast_db_type(connection)})")
        elif field.name == "target_label":
            values.append(f"LEFT(deactivated.email, {TARGET_LABEL_LENGTH})")
        else:
            values.append(f"CAST(%s AS {field.cast_db_type(connection)})")
            value_params.append(
                field.get_db_prep_save(field.pre_save(template, add=True), connection)
            )
    sql = (
        # MATERIALIZED: the claim runs once, and only the rows it locked are updated.
        f"WITH claimed AS MATERIALIZED ({claim_sql}), "
        f"deactivated AS (UPDATE {qn(user_meta.db_table)} "
        f"SET {qn(user_meta.get_field('is_active').column)} = false, "
        f"{qn(user_meta.get_field('deactivated_at').column)} = %s "
        f"WHERE {user_pk} IN (SELECT * FROM claimed) "
        f"RETURNING {user_pk} AS id, {qn(user_meta.get_field('email').column)} AS email), "
        f"ended AS (DELETE FROM {qn(session_meta.db_table)} "
        f"WHERE {qn(session_meta.get_field('user_id').column)} IN (SELECT id FROM deactivated)) "
        f"INSERT INTO {qn(audit_meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM deactivated"
    )
    deactivated_at = user_meta.get_field("deactivated_at").get_db_prep_save(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*claim_params, deactivated_at, *value_params])
        return cursor.rowcount


def _deactivate_batch(user_ids, *, cutoff, now, reason, data):
    """Deactivate those of these users who are still active, still over `cutoff` and not
    held by another run (a user another run holds is that run's to deactivate)."""
    claim = (
        User.objects.filter(pk__in=user_ids, is_active=True, last_active_at__lt=cutoff)
        .select_for_update(skip_locked=True)
        .values_list("pk", flat=True)
    )
    if connection.vendor == "postgresql":
        return _deactivate_claimed(claim, now=now, reason=reason, data=data)
    return _deactivate(list(claim), now=now, reason=reason, data=data)


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
            data = {
                "limit_months": policy.inactivity_limit_months,
                "set_by": f"{policy.owner.name} ({policy.level})",
            }
            # The scope is read once per policy; each batch then claims its users by
            # primary key, re-checking under the row lock what can change meanwhile (a
            # sign-in, another run). Claiming "the next BATCH users of the scope" instead
            # re-read every user the earlier batches had deactivated, and the whole scope
            # (a UNION) each time: at 100,000 users, batches of 5,000 went from 0.4 s
            # to 2 s each.
            user_ids = list(over.order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(user_ids), BATCH):
                with transaction.atomic():
                    total += _deactivate_batch(
                        user_ids[start : start + BATCH],
                        cutoff=cutoff,
                        now=now,
                        reason="inactivity",
                        data=data,
                    )
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
    """Email users who will be deactivated within WARNING_DAYS, once per idle period: each
    warning is queued in the outbox (SecurityNotice) and sent by the worker."""
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
                # Claimed and queued together; the worker sends it once this commits.
                with transaction.atomic():
                    claimed = (
                        User.objects.filter(pk=user.pk)
                        .exclude(inactivity_warning_sent_at__gt=F("last_active_at"))
                        .update(inactivity_warning_sent_at=now)
                    )
                    if not claimed:
                        continue  # another run sent it
                    emails.queue(
                        SecurityNotice,
                        to=user.email,
                        subject="Your account will be deactivated soon",
                        text_template="emails/security/inactivity_warning.txt",
                        context={"user": user, "deadline": deadline},
                        user=user,
                        entity=policy.entity,
                        kind=SecurityNotice.Kind.INACTIVITY_WARNING,
                    )
                sent += 1
    return sent
