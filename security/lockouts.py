"""Lockouts: an account is blocked for 1 hour after 5 failed sign-ins, an IP address for
24 hours after 10 (over any accounts). Always on. Every check of a password is an
attempt: the login page, the admin's login and the current password of the change form.

django-axes applies one limit and one cool-off to every lockout parameter, so this is
its custom handler (`AXES_HANDLER`, the extension point its maintainers recommend) with
two counters of its own. Before any password is checked the attempt takes a
*reservation* on both counters, under their row locks: a counter holds its confirmed
failures and the attempts in flight (reserved, their password being checked now).

- Confirmed failures at the limit: the attempt is refused, unchecked (a block).
- Confirmed failures plus attempts in flight at the limit: the attempt waits until one
  in flight ends, then decides again. So counts are exact under concurrency and nobody
  is refused for attempts that may yet succeed: 50 simultaneous wrong passwords for one
  account check 5 and the other 45 are refused unchecked; 10 right ones all sign in.
- Otherwise the attempt counts as in flight and its password is checked. A wrong one
  turns the reservation into a failure (`settle_failure`); a right one gives it back
  and starts the account's counter again (`release_after_success`).

A reservation left behind by a process that died mid-check stops counting after
IN_FLIGHT_EXPIRY; an attempt waits at most WAIT_AT_MOST, then is refused (429) rather
than checked beyond the limit. A failure is forgotten after its block duration without
failures; a block lasts that duration from the failure that reached the limit; refused
attempts are not counted, so they do not extend it.

Accounts are counted by the address typed, normalised as Django's UsernameField does
(NFKC) and casefolded (`account_key`), so compatibility and case variants of one address
share a counter; addresses by their one spelling (security.client_ip.canonical_ip).
"""

import math
import random
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.handlers.base import AbstractAxesHandler, AxesBaseHandler
from django.db import connection, transaction
from django.shortcuts import render
from django.utils import timezone

from accounts.models import User
from core import emails
from security.audit import record
from security.client_ip import canonical_ip, client_ip
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
    # Password-reset requests (security.password_reset): per address typed, per IP address.
    Kind.RESET: Limit(failures=3, duration=timedelta(hours=1)),
    Kind.RESET_IP: Limit(failures=20, duration=timedelta(hours=1)),
}

# No password check takes this long (the web worker is killed at 30 s): a reservation
# older than this belongs to a process that died, and no longer holds a place.
IN_FLIGHT_EXPIRY = timedelta(seconds=30)
# How long an attempt waits for a place while others are being checked: normally one
# password check (tens of milliseconds); past this it is refused, never checked.
WAIT_AT_MOST = 5.0
FIRST_PAUSE, LONGEST_PAUSE = 0.005, 0.1


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


def in_flight_now(row, now):
    """Attempts of this counter still being checked (a crashed process's expire)."""
    if not row.in_flight or row.in_flight_since is None:
        return 0
    return row.in_flight if now < row.in_flight_since + IN_FLIGHT_EXPIRY else 0


@dataclass
class Reservation:
    refused_until: datetime | None = None
    # Refused because places stayed taken by attempts in flight, not by a block.
    busy: bool = False
    account: str | None = None
    ip: str | None = None
    reserved_at: datetime | None = None
    # "success" or "failure" once the password check has been accounted for.
    settled: str | None = None
    failed_at: datetime | None = None
    account_failures: int = 0
    ip_failures: int = 0

    @property
    def refused(self):
        return self.refused_until is not None

    @property
    def open(self):
        """Reserved and not yet accounted for."""
        return self.reserved_at is not None and self.settled is None


def account_key(value):
    """The account counter's key for an address as typed: NFKC (as Django's
    UsernameField), casefolded, without surrounding white space."""
    folded = unicodedata.normalize("NFKC", value or "").strip().casefold()
    return unicodedata.normalize("NFKC", folded)[:254]


def _keys(account, ip):
    keys = []
    ip = canonical_ip(ip) if ip else None
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


def _pairs(keys):
    return ", ".join(["(%s, %s)"] * len(keys)), [part for pair in keys for part in pair]


def _throttle_rows(keys, *, lock=False):
    """The counter rows of these (kind, key) pairs, ordered by kind and key; with `lock`,
    locked in that order (FOR UPDATE where the database has it)."""
    pairs, params = _pairs(keys)
    sql = "SELECT id, kind, key, failures, last_failure_at, in_flight, in_flight_since "
    sql += f"FROM {_table()} WHERE (kind, key) IN ({pairs}) ORDER BY kind, key"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            LoginThrottle(
                id=id,
                kind=kind,
                key=key,
                failures=failures,
                last_failure_at=_aware(last),
                in_flight=in_flight,
                in_flight_since=_aware(since),
            )
            for id, kind, key, failures, last, in_flight, since in cursor.fetchall()
        ]


def _db_time(value):
    """A datetime as the ORM would store it (SQLite keeps naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _aware(value):
    # A plain cursor skips the ORM's converters: SQLite hands back naive UTC datetimes.
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


def lock_counters(keys):
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


def _set_per_row(rows, column, values, stamp, now):
    """Set `column` of each locked row to its value, and `stamp` of all to `now`."""
    cases = " ".join(["WHEN %s THEN %s"] * len(rows))
    ids = ", ".join(["%s"] * len(rows))
    pairs = [part for row, n in zip(rows, values, strict=True) for part in (row.pk, n)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table()} SET {stamp} = %s, {column} = CASE id {cases} END "
            f"WHERE id IN ({ids})",
            [_db_time(now), *pairs, *[row.pk for row in rows]],
        )


def store_failures(rows, now):
    """Store each locked row's new `failures`, all with `now` as their last failure."""
    _set_per_row(rows, "failures", [row.failures for row in rows], "last_failure_at", now)


@dataclass
class _State:
    blocked_until: datetime | None = None
    full: bool = False
    # When the oldest place-holding reservation of a full counter expires at the latest.
    frees_by: datetime | None = None


def _state(rows, now):
    """Blocked (confirmed failures at a limit), full (every place taken by attempts in
    flight) or neither, over these counter rows."""
    state = _State()
    for row in rows:
        limit = LIMITS[row.kind]
        confirmed = current_failures(row.failures, row.last_failure_at, limit, now)
        if confirmed >= limit.failures:
            end = row.last_failure_at + limit.duration
            state.blocked_until = max(filter(None, [state.blocked_until, end]))
        elif confirmed + in_flight_now(row, now) >= limit.failures:
            state.full = True
            frees = row.in_flight_since + IN_FLIGHT_EXPIRY
            state.frees_by = max(filter(None, [state.frees_by, frees]))
    return state


def block_in_force(account, ip, now):
    """When the block on this account or address ends, or None: one plain read, no lock.

    The login view asks this first, so an attempt during a block reads the counters once
    and locks nothing. A block that begins right after this read is still caught by
    `reserve_attempt`, which decides under the row locks."""
    keys = _keys(account, ip)
    if not keys:
        return None
    return _state(_throttle_rows(keys), now).blocked_until


def _take_places(rows, now):
    counts = [in_flight_now(row, now) + 1 for row in rows]
    _set_per_row(rows, "in_flight", counts, "in_flight_since", now)


def reserve_attempt(account, ip, now):
    """Refuse when blocked; wait while every place is taken by attempts in flight;
    otherwise count this attempt as in flight (see the module's docstring)."""
    reservation = Reservation(account=account, ip=ip)
    keys = _keys(account, ip)
    if not keys:
        return reservation
    # Inside a transaction the row locks would be held while waiting: never wait there.
    deadline = time.monotonic() + (0 if connection.in_atomic_block else WAIT_AT_MOST)
    pause = FIRST_PAUSE
    while True:
        with transaction.atomic():
            rows = list(lock_counters(keys).values())
            state = _state(rows, now)
            if state.blocked_until is None and not state.full:
                _take_places(rows, now)
                reservation.reserved_at = now
                return reservation
        # Wait without locks, reading plainly, until a place frees or a block begins.
        while state.blocked_until is None and state.full:
            if time.monotonic() >= deadline:
                reservation.refused_until, reservation.busy = state.frees_by, True
                return reservation
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, LONGEST_PAUSE)
            now = timezone.now()
            state = _state(_throttle_rows(keys), now)
        if state.blocked_until is not None:
            reservation.refused_until = state.blocked_until
            return reservation


def settle_failure(reservation, now):
    """The password was wrong (or never found right): the reservation becomes a failure on
    both counters, in one statement. Records the counts on the reservation."""
    if reservation is None or not reservation.open:
        return
    reservation.settled, reservation.failed_at = "failure", now
    keys = _keys(reservation.account, reservation.ip)
    counts = _fail(keys, now)
    missing = [key for key in keys if key not in counts]
    if missing:  # purged meanwhile (security.tasks): recreate, then count
        LoginThrottle.objects.bulk_create(
            [LoginThrottle(kind=kind, key=key) for kind, key in missing], ignore_conflicts=True
        )
        counts.update(_fail(missing, now))
    for (kind, _), failures in counts.items():
        if kind == Kind.ACCOUNT:
            reservation.account_failures = failures
        else:
            reservation.ip_failures = failures


def _fail(keys, now):
    pairs, params = _pairs(keys)
    account_since = now - LIMITS[Kind.ACCOUNT].duration
    ip_since = now - LIMITS[Kind.IP].duration
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table()} SET
                failures = CASE WHEN last_failure_at > (CASE kind WHEN %s THEN %s ELSE %s END)
                    THEN failures + 1 ELSE 1 END,
                last_failure_at = %s,
                in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END
            WHERE (kind, key) IN ({pairs}) RETURNING kind, key, failures""",
            [Kind.ACCOUNT.value, _db_time(account_since), _db_time(ip_since), _db_time(now)]
            + params,
        )
        return {(kind, key): failures for kind, key, failures in cursor.fetchall()}


def release_after_success(reservation):
    """The password was right: the account's counter starts again; the address gets its
    place back (its confirmed failures still count, unless they have aged out)."""
    if reservation is None or not reservation.open:
        return
    reservation.settled = "success"
    pairs, params = _pairs(_keys(reservation.account, reservation.ip))
    ip_since = _db_time(timezone.now() - LIMITS[Kind.IP].duration)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table()} SET
                failures = CASE WHEN kind = %s OR last_failure_at <= %s THEN 0
                    ELSE failures END,
                last_failure_at = CASE WHEN kind = %s OR last_failure_at <= %s THEN NULL
                    ELSE last_failure_at END,
                in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END
            WHERE (kind, key) IN ({pairs})""",
            [Kind.ACCOUNT.value, ip_since, Kind.ACCOUNT.value, ip_since] + params,
        )


def lift(kind, key, *, actor=None, entity=None, request=None):
    """End a block (admins for accounts, operators for addresses). Returns True if one was
    lifted."""
    now = timezone.now()
    key = account_key(key) if kind == Kind.ACCOUNT else canonical_ip(key) or key
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
    """Current blocks as (key, failures, until), optionally among `keys` (account keys
    are given as stored emails and answered as given)."""
    now = now or timezone.now()
    limit = LIMITS[kind]
    rows = LoginThrottle.objects.filter(
        kind=kind, failures__gte=limit.failures, last_failure_at__gt=now - limit.duration
    )
    given = {}
    if keys is not None:
        normal = account_key if kind == Kind.ACCOUNT else (lambda key: key)
        given = {normal(key): key for key in keys}
        rows = rows.filter(key__in=list(given))
    return [
        (given.get(row.key, row.key), row.failures, row.last_failure_at + limit.duration)
        for row in rows.order_by("key")
    ]


def attempted_account(credentials):
    """The account an attempt names, as its counter's key; None when it names none. A
    username with a NUL character names none (the form refuses it, and PostgreSQL text
    cannot hold it); the attempt still counts against its address."""
    account = account_key((credentials or {}).get("username"))
    return account if account and "\x00" not in account else None


def admit(request, account, username=""):
    """The lockout in front of a password check by a view (the login page, the change
    form's current password): None when the check may go ahead (the reservation is
    `request.lockout_reservation`), else the refusal page, unchecked.

    An attempt during a block is answered after one plain read of the counters and the
    refusal's audit event: no row is locked and no password is checked."""
    ip = client_ip(request)
    now = timezone.now()
    until, busy = block_in_force(account, ip, now), False
    if until is None:
        request.lockout_reservation = reserve_attempt(account, ip, now)
        until, busy = request.lockout_reservation.refused_until, request.lockout_reservation.busy
    if until is None:
        return None
    record_refusal(request, account, until, busy=busy)
    return refusal_page(request, until, username, busy=busy)


def finish(request, *, rolled_back=False):
    """After the view's check: a reservation not accounted for (no password was checked:
    the form refused the input) counts as a failure, and so does one whose transaction
    rolled back (an error after the check must not hand out free guesses)."""
    reservation = getattr(request, "lockout_reservation", None)
    if reservation is None or reservation.refused or reservation.reserved_at is None:
        return
    if rolled_back:
        reservation.settled = None
    if reservation.open:
        attempt_failed(request, reservation)


def attempt_failed(request, reservation):
    """Settle a wrong password and record the block it may start (the 5th failure of the
    account, the 10th from the address), once."""
    settle_failure(reservation, timezone.now())
    if reservation.account and reservation.account_failures == LIMITS[Kind.ACCOUNT].failures:
        _account_blocked(request, reservation.account, reservation.failed_at)
    if reservation.ip and reservation.ip_failures == LIMITS[Kind.IP].failures:
        record(
            "auth.ip.blocked",
            request=request,
            target_label=reservation.ip,
            data={"ip": reservation.ip},
        )


class LockoutHandler(AbstractAxesHandler, AxesBaseHandler):
    """django-axes handler with an account counter and an IP counter (see module doc)."""

    def is_allowed(self, request, credentials=None):
        # The login view reserves before the form is checked (security.signin_views); any other
        # caller of authenticate() (the admin's login) reserves here.
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
            record_refusal(
                request, reservation.account, reservation.refused_until, busy=reservation.busy
            )
        elif reservation.open:
            attempt_failed(request, reservation)

    def user_logged_in(self, sender, request, user, **kwargs):
        pass

    def user_logged_out(self, sender, request, user, **kwargs):
        pass

    def reset_attempts(self, *, ip_address=None, username=None, ip_or_username=False):
        """Used by axes' own axes_reset_* commands."""
        lifted = 0
        if username:
            lifted += lift(Kind.ACCOUNT, username)
        if ip_address:
            lifted += lift(Kind.IP, ip_address)
        return lifted


def _account_blocked(request, account, now):
    user = User.objects.filter(email=account).first()
    until = now + LIMITS[Kind.ACCOUNT].duration
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


def record_refusal(request, account, until, *, busy=False):
    # About the account it names, when there is one, so its entity's admins see it in
    # their audit log (as they see failed sign-ins); the page shown is the same either way.
    target = User.objects.filter(email=account).first() if account else None
    data = {"username": account or "", "until": until.isoformat()}
    if busy:
        data["busy"] = True
    record(
        "auth.login.refused_blocked",
        request=request,
        target=target,
        target_label=account or None,
        data=data,
    )


def lockout_text(until, *, busy=False):
    if busy:
        message = "Too many sign-in attempts at the same time."
    else:
        message = "Too many failed sign-in attempts."
    if until is not None:
        local = timezone.localtime(until)
        message += f" Try again after {local:%H:%M} on {local:%Y-%m-%d}."
    return message


def block_started(reservation):
    """When the block this failed attempt started ends (it was the 5th failure for the
    account or the 10th from the address), else None: the same for unknown accounts."""
    if reservation is None or reservation.settled != "failure":
        return None
    ends = []
    if reservation.account and reservation.account_failures >= LIMITS[Kind.ACCOUNT].failures:
        ends.append(reservation.failed_at + LIMITS[Kind.ACCOUNT].duration)
    if reservation.ip and reservation.ip_failures >= LIMITS[Kind.IP].failures:
        ends.append(reservation.failed_at + LIMITS[Kind.IP].duration)
    return max(ends, default=None)


def retry_after(response, until, now=None):
    """`Retry-After`: whole seconds until `until` (at least 1)."""
    seconds = (until - (now or timezone.now())).total_seconds() if until else 0
    response["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


def refusal_page(request, until, username="", *, busy=False):
    """The login page again, saying when to try again (429, with Retry-After): the same
    for existing and unknown accounts. No password is checked and nothing else is read."""
    form = EmailLoginForm(request, initial={"username": username})
    message = lockout_text(until, busy=busy)
    response = render(
        request,
        "registration/login.html",
        {"form": form, "lockout_message": message, "next": request.POST.get("next", "")},
        status=429,
    )
    return retry_after(response, until)


def lockout_response(request, original_response=None, credentials=None):
    """Axes' lockout answer (AXES_LOCKOUT_CALLABLE) for a refusal decided under the locks."""
    reservation = getattr(request, "lockout_reservation", None)
    refused = reservation is not None and reservation.refused
    return refusal_page(
        request,
        reservation.refused_until if refused else None,
        (credentials or {}).get("username", ""),
        busy=refused and reservation.busy,
    )
