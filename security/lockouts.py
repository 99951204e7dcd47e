"""Lockouts: an account is blocked for 1 hour after 5 failed sign-ins, an IP address for
24 hours after 10 (over any accounts). Always on.

django-axes applies one limit and one cool-off to every lockout parameter, so this is
its custom handler (`AXES_HANDLER`, the extension point its maintainers recommend) with
two counters of its own. Axes' backend asks `is_allowed()` before any password is
checked; here that call *reserves* the attempt: under a row lock it refuses when either
counter is at its limit, and otherwise counts the attempt as a failure in advance. A
correct password then gives the reservation back (`release_after_success`). Counting
before verifying is what keeps the count exact under concurrency: 30 simultaneous wrong
passwords for one account take 5 reservations, so 5 failures and at most 5 password
checks; the other 25 are refused unchecked.

A failure is forgotten once the counter has seen no failure for its block duration, and
a block lasts that duration from the failure that reached the limit. Attempts refused
during a block are not counted, so they do not extend it.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.handlers.base import AbstractAxesHandler, AxesBaseHandler
from django.db import connection, transaction
from django.shortcuts import render
from django.utils import timezone

from accounts.models import User, normalize_email_address
from core import emails
from security.audit import record
from security.forms import EmailLoginForm
from security.models import LoginThrottle, SecurityNotice

Kind = LoginThrottle.Kind


@dataclass(frozen=True)
class Limit:
    failures: int
    duration: timedelta


LIMITS = {
    Kind.ACCOUNT: Limit(failures=5, duration=timedelta(hours=1)),
    Kind.IP: Limit(failures=10, duration=timedelta(hours=24)),
}


def current_failures(failures, last_failure_at, limit, now):
    """Failures still counting at `now` (all are forgotten after a quiet duration)."""
    if last_failure_at is None or now >= last_failure_at + limit.duration:
        return 0
    return failures


def blocked_until(failures, last_failure_at, limit, now):
    """When the block ends, or None when the counter is not blocked at `now`."""
    if current_failures(failures, last_failure_at, limit, now) >= limit.failures:
        return last_failure_at + limit.duration
    return None


@dataclass
class Reservation:
    refused_until: datetime | None = None
    account: str | None = None
    ip: str | None = None
    account_failures: int = 0
    ip_failures: int = 0
    released: bool = False
    reserved_at: datetime | None = None
    # The address counter's last failure before this attempt, restored if it succeeds.
    ip_previous_failure_at: datetime | None = None

    @property
    def refused(self):
        return self.refused_until is not None


def _keys(account, ip):
    keys = []
    if ip:
        keys.append((Kind.IP, ip))
    if account:
        keys.append((Kind.ACCOUNT, account))
    return keys


# The counter statements below are hand-written: every sign-in attempt runs them, and the
# ORM spent about 1 ms of Python per attempt building them (an OR of (kind, key) pairs, a
# CASE per row for bulk_update), against 0.2 ms for the statements themselves (bench:
# login_success, login_refused). They stay plain SQL that SQLite runs too.
def _table():
    return connection.ops.quote_name(LoginThrottle._meta.db_table)


def _throttle_rows(keys, *, lock=False):
    """The counter rows of these (kind, key) pairs, ordered by kind and key; with `lock`,
    locked in that order (FOR UPDATE where the database has it)."""
    pairs = ", ".join(["(%s, %s)"] * len(keys))
    sql = f"SELECT id, kind, key, failures, last_failure_at FROM {_table()} "
    sql += f"WHERE (kind, key) IN ({pairs}) ORDER BY kind, key"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [part for pair in keys for part in pair])
        return [
            LoginThrottle(
                id=id, kind=kind, key=key, failures=failures, last_failure_at=_aware(last)
            )
            for id, kind, key, failures, last in cursor.fetchall()
        ]


def _db_time(value):
    """A datetime as the ORM would store it (SQLite keeps naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _aware(value):
    # A plain cursor skips the ORM's converters: SQLite hands back naive UTC datetimes.
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


def _lock_rows(keys):
    """Lock the counters in one fixed order (no deadlocks); create the missing ones (a
    first attempt for this account or address) and lock again."""
    rows = {(row.kind, row.key): row for row in _throttle_rows(keys, lock=True)}
    if len(rows) < len(keys):
        LoginThrottle.objects.bulk_create(
            [LoginThrottle(kind=kind, key=key) for kind, key in keys if (kind, key) not in rows],
            ignore_conflicts=True,
        )
        rows = {(row.kind, row.key): row for row in _throttle_rows(keys, lock=True)}
    return rows


def _count_failures(rows, now):
    """Store each locked row's new `failures`, all with `now` as their last failure."""
    cases = " ".join(["WHEN %s THEN %s"] * len(rows))
    ids = ", ".join(["%s"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table()} SET last_failure_at = %s, failures = CASE id {cases} END "
            f"WHERE id IN ({ids})",
            [_db_time(now), *[part for row in rows for part in (row.pk, row.failures)]]
            + [row.pk for row in rows],
        )


def block_in_force(account, ip, now):
    """When the block on this account or address ends, or None: one plain read, no lock.

    The login view asks this first, so an attempt during a block reads the counters once
    and locks nothing. A block that begins right after this read is still caught by
    `reserve_attempt`, which decides under the row locks."""
    keys = _keys(account, ip)
    if not keys:
        return None
    ends = [
        blocked_until(row.failures, row.last_failure_at, LIMITS[row.kind], now)
        for row in _throttle_rows(keys)
    ]
    ends = [end for end in ends if end is not None]
    return max(ends) if ends else None


def reserve_attempt(account, ip, now):
    """Refuse when blocked; otherwise count this attempt as a failure in advance."""
    reservation = Reservation(account=account, ip=ip)
    keys = _keys(account, ip)
    if not keys:
        return reservation
    with transaction.atomic():
        rows = _lock_rows(keys)
        ends = [
            blocked_until(row.failures, row.last_failure_at, LIMITS[row.kind], now)
            for row in rows.values()
        ]
        ends = [end for end in ends if end is not None]
        if ends:
            reservation.refused_until = max(ends)
            return reservation
        reservation.reserved_at = now
        for (kind, _), row in rows.items():
            still = current_failures(row.failures, row.last_failure_at, LIMITS[kind], now)
            if kind == Kind.IP:
                reservation.ip_previous_failure_at = row.last_failure_at if still else None
            row.failures = still + 1
            row.last_failure_at = now
            if kind == Kind.ACCOUNT:
                reservation.account_failures = row.failures
            else:
                reservation.ip_failures = row.failures
        _count_failures(list(rows.values()), now)
    return reservation


def release_after_success(reservation):
    """The password was right: the account's counter starts again; the address gets its
    reserved attempt back (other failures from it still count)."""
    if reservation is None or reservation.refused or reservation.released:
        return
    reservation.released = True
    # The account starts again. The address: unless another failure came since, its last
    # failure is again the one before this attempt, so old failures still age out.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table()} SET
                failures = CASE WHEN kind = %(account_kind)s THEN 0 ELSE failures - 1 END,
                last_failure_at = CASE
                    WHEN kind = %(account_kind)s THEN NULL
                    WHEN last_failure_at = %(reserved_at)s THEN %(restored)s
                    ELSE last_failure_at END
            WHERE (kind = %(account_kind)s AND key = %(account)s)
               OR (kind = %(ip_kind)s AND key = %(ip)s AND failures > 0)""",
            {
                "account_kind": Kind.ACCOUNT.value,
                "ip_kind": Kind.IP.value,
                "account": reservation.account,
                "ip": reservation.ip,
                "reserved_at": _db_time(reservation.reserved_at),
                "restored": _db_time(reservation.ip_previous_failure_at),
            },
        )


def lift(kind, key, *, actor=None, entity=None, request=None):
    """End a block (admins for accounts, operators for addresses). Returns True if one was
    lifted."""
    now = timezone.now()
    row = LoginThrottle.objects.filter(kind=kind, key=key).first()
    if row is None or blocked_until(row.failures, row.last_failure_at, LIMITS[kind], now) is None:
        return False
    LoginThrottle.objects.filter(pk=row.pk).update(failures=0, last_failure_at=None)
    record(
        f"auth.{'account' if kind == Kind.ACCOUNT else 'ip'}.unblocked",
        actor=actor,
        entity=entity,
        target_label=key,
        request=request,
        data={"kind": kind, "key": key},
    )
    return True


def active_blocks(kind, keys=None, now=None):
    """Current blocks as (key, failures, until), optionally among `keys`."""
    now = now or timezone.now()
    limit = LIMITS[kind]
    rows = LoginThrottle.objects.filter(
        kind=kind, failures__gte=limit.failures, last_failure_at__gt=now - limit.duration
    )
    if keys is not None:
        rows = rows.filter(key__in=keys)
    return [
        (row.key, row.failures, row.last_failure_at + limit.duration)
        for row in rows.order_by("key")
    ]


def attempted_account(credentials):
    """The account an attempt names, as its counter's key; None when it names none. A
    username with a NUL character names none (the form refuses it, and PostgreSQL text
    cannot hold it); the attempt still counts against its address."""
    account = normalize_email_address((credentials or {}).get("username"))[:254]
    return account if account and "\x00" not in account else None


class LockoutHandler(AbstractAxesHandler, AxesBaseHandler):
    """django-axes handler with an account counter and an IP counter (see module doc)."""

    def is_allowed(self, request, credentials=None):
        # The login view reserves before the form is checked (security.signin_views); any other
        # caller of authenticate() reserves here.
        reservation = getattr(request, "lockout_reservation", None)
        if reservation is None or reservation.account != attempted_account(credentials):
            reservation = reserve_attempt(
                attempted_account(credentials), request.axes_ip_address, timezone.now()
            )
            request.lockout_reservation = reservation
        if reservation.refused:
            # AxesMiddleware answers with AXES_LOCKOUT_CALLABLE when these are set.
            request.axes_locked_out = True
            request.axes_credentials = credentials
        return not reservation.refused

    def is_locked(self, request, credentials=None):
        now = timezone.now()
        for kind, key in _keys(attempted_account(credentials), request.axes_ip_address):
            row = LoginThrottle.objects.filter(kind=kind, key=key).first()
            if row and blocked_until(row.failures, row.last_failure_at, LIMITS[kind], now):
                return True
        return False

    def get_failures(self, request, credentials=None):
        account = attempted_account(credentials)
        row = LoginThrottle.objects.filter(kind=Kind.ACCOUNT, key=account).first()
        if row is None:
            return 0
        return current_failures(
            row.failures, row.last_failure_at, LIMITS[Kind.ACCOUNT], timezone.now()
        )

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        reservation = getattr(request, "lockout_reservation", None)
        if reservation is None:
            return
        if reservation.refused:
            record_refusal(request, reservation.account, reservation.refused_until)
            return
        if reservation.account and reservation.account_failures == LIMITS[Kind.ACCOUNT].failures:
            _account_blocked(request, reservation.account)
        if reservation.ip and reservation.ip_failures == LIMITS[Kind.IP].failures:
            record(
                "auth.ip.blocked",
                request=request,
                target_label=reservation.ip,
                data={"ip": reservation.ip},
            )

    def user_logged_in(self, sender, request, user, **kwargs):
        pass

    def user_logged_out(self, sender, request, user, **kwargs):
        pass

    def reset_attempts(self, *, ip_address=None, username=None, ip_or_username=False):
        """Used by axes' own axes_reset_* commands."""
        lifted = 0
        if username:
            lifted += lift(Kind.ACCOUNT, normalize_email_address(username))
        if ip_address:
            lifted += lift(Kind.IP, ip_address)
        return lifted


def _account_blocked(request, account):
    user = User.objects.filter(email=account).first()
    until = timezone.now() + LIMITS[Kind.ACCOUNT].duration
    record(
        "auth.account.blocked",
        request=request,
        target=user,
        target_label=account,
        data={"username": account, "until": until.isoformat()},
    )
    if user is not None:
        # Queued in the outbox; the worker sends it once this request's work commits.
        emails.queue(
            SecurityNotice,
            to=user.email,
            subject="Your account was blocked after failed sign-ins",
            text_template="emails/security/lockout.txt",
            context={"user": user, "failures": LIMITS[Kind.ACCOUNT].failures, "until": until},
            user=user,
            kind=SecurityNotice.Kind.LOCKOUT,
        )


def record_refusal(request, account, until):
    # About the account it names, when there is one, so its entity's admins see it in
    # their audit log (as they see failed sign-ins); the page shown is the same either way.
    target = User.objects.filter(email=account).first() if account else None
    record(
        "auth.login.refused_blocked",
        request=request,
        target=target,
        target_label=account or None,
        data={"username": account or "", "until": until.isoformat()},
    )


def lockout_text(until):
    message = "Too many failed sign-in attempts."
    if until is not None:
        local = timezone.localtime(until)
        message += f" Try again after {local:%H:%M} on {local:%Y-%m-%d}."
    return message


def block_started(reservation):
    """When the block this failed attempt started ends (it was the 5th failure for the
    account or the 10th from the address), else None: the same for unknown accounts."""
    if reservation is None or reservation.refused or reservation.released:
        return None
    ends = []
    if reservation.account and reservation.account_failures >= LIMITS[Kind.ACCOUNT].failures:
        ends.append(reservation.reserved_at + LIMITS[Kind.ACCOUNT].duration)
    if reservation.ip and reservation.ip_failures >= LIMITS[Kind.IP].failures:
        ends.append(reservation.reserved_at + LIMITS[Kind.IP].duration)
    return max(ends, default=None)


def refusal_page(request, until, username=""):
    """The login page again, saying when to try again: the same for existing and unknown
    accounts. No password is checked and nothing else is read."""
    form = EmailLoginForm(request, initial={"username": username})
    message = lockout_text(until)
    return render(
        request,
        "registration/login.html",
        {"form": form, "lockout_message": message, "next": request.POST.get("next", "")},
        status=429,
    )


def lockout_response(request, original_response=None, credentials=None):
    """Axes' lockout answer (AXES_LOCKOUT_CALLABLE) for a refusal decided under the locks."""
    reservation = getattr(request, "lockout_reservation", None)
    until = reservation.refused_until if reservation and reservation.refused else None
    return refusal_page(request, until, (credentials or {}).get("username", ""))
