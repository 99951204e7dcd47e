"""The IP allowlist: matching addresses, and the SMS code that approves a new one.

An address must pass every allowlist that applies where the user works: the current
entity's and its multi-entity access's, each when turned on. A sign-in from elsewhere is
paused by the sign-in gate until a 6-digit code, sent by SMS to the user or to the
administrators, is entered; the address is then added to those allowlists as an entry
for that user only.
"""

import copy
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils.crypto import salted_hmac

from accounts.models import GroupMembership, Membership, User
from accounts.roles import Capability, can
from security import ratelimit
from security.audit import record
from security.crypto import keyed_hash_matches
from security.models import AllowedNetwork, CodeRecipient, IpChallenge
from security.phones import mask_phone
from security.sms import SmsError, send_sms

CODE_VALIDITY = timedelta(minutes=10)
MAX_FAILURES = 5
RESEND_AFTER = timedelta(minutes=1)
MAX_SENDS = 3
# The caps on SMS sending (per user, address, entity and number prefix) are
# security.ratelimit.SMS_CAPS, shared by every process through the cache.


# --- Matching (pure) -----------------------------------------------------------------------


def normalize_ip(value):
    """An address as ipaddress sees it; an IPv4-mapped IPv6 address becomes IPv4."""
    address = ipaddress.ip_address(str(value).strip())
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text):
    """A network typed by an admin (address or CIDR), normalised, or ValidationError."""
    raw = (text or "").strip()
    if not raw:
        raise ValidationError("Enter an address or network, such as 203.0.113.7 or 203.0.113.0/24.")
    if "%" in raw:
        raise ValidationError(
            f"“{raw}” has a zone index (the part from %), which only means something on one "
            "machine. Enter the address without it."
        )
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ValidationError(
            f"“{raw}” is not an IP address or network. Use forms like 203.0.113.7, "
            "203.0.113.0/24 or 2001:db8::/48."
        ) from None
    if network.version == 6 and network.network_address.ipv4_mapped is not None:
        mapped = network.network_address.ipv4_mapped
        network = ipaddress.ip_network(f"{mapped}/{max(0, network.prefixlen - 96)}", strict=False)
    if network.prefixlen == 0:
        raise ValidationError("A network that matches every address would turn the allowlist off.")
    return network


def in_list(address, networks):
    return any(address in network for network in networks if address.version == network.version)


def passes_all(address, allowlists):
    """True when `address` is in every list (each list: the networks of one level)."""
    return all(in_list(address, networks) for networks in allowlists)


# --- Context --------------------------------------------------------------------------------


@dataclass
class Context:
    """The allowlists that apply to one user working in one entity."""

    policies: list  # SecurityPolicy rows with the allowlist on
    allowlists: list  # one list of ip_network per policy

    @property
    def active(self):
        return bool(self.policies)

    @property
    def recipient(self):
        if any(p.ip_code_recipient == CodeRecipient.ADMINS for p in self.policies):
            return CodeRecipient.ADMINS
        return CodeRecipient.USER


def applying(entity, policies):
    """The rows of `policies` whose allowlist is on and applies where the user works."""
    return [
        p
        for p in policies
        if p.ip_allowlist_enabled
        and (p.entity_id == entity.pk or (entity.group_id and p.group_id == entity.group_id))
    ]


def passed_marker(ip, entity, policies):
    """What a session remembers after its address passed: the address, the entity and
    the version of every applying allowlist. Any change to one of them gives another
    marker, and the address is checked again."""
    versions = sorted([p.pk, p.networks_version] for p in applying(entity, policies))
    return [str(ip), entity.pk, versions]


def context_for(user, entity, policies):
    """`policies`: the rows already loaded for the request (entity's and access's)."""
    relevant = applying(entity, policies)
    if not relevant:
        return Context([], [])
    rows = AllowedNetwork.objects.filter(policy__in=relevant).filter(
        Q(for_user__isnull=True) | Q(for_user=user)
    )
    by_policy = {p.pk: [] for p in relevant}
    for row in rows:
        by_policy[row.policy_id].append(ipaddress.ip_network(row.network))
    return Context(relevant, [by_policy[p.pk] for p in relevant])


def address_allowed(ip, context):
    if not context.active:
        return True
    try:
        return passes_all(normalize_ip(ip), context.allowlists)
    except ValueError:
        return False


# --- Challenges ----------------------------------------------------------------------------


def _code_hash(challenge_id, code):
    return salted_hmac("security.ip-challenge", f"{challenge_id}:{code}").hexdigest()


TOO_MANY_FAILURES = "Too many wrong codes. Log out and sign in again to get a new code."


def open_challenge(user, ip, session_key, now):
    """The unapproved challenge of this user, address and session, if any; also one whose
    tries are used up (`exhausted`), so that asking for a new code cannot give new tries:
    only a new sign-in (a new session) starts a new challenge."""
    return (
        IpChallenge.objects.filter(
            user=user,
            ip=str(normalize_ip(ip)),
            session_key=session_key,
            approved_at__isnull=True,
        )
        .order_by("-created_at")
        .first()
    )


def exhausted(challenge):
    return challenge is not None and challenge.failures >= MAX_FAILURES


def recipients_for(user, entity, recipient):
    """Phone numbers to send the code to."""
    if recipient == CodeRecipient.USER:
        return [user.phone] if user.phone else []
    admin_ids = [
        m.user_id
        for m in Membership.objects.filter(entity=entity)
        if can(m.role, Capability.MANAGE_ENTITY_SECURITY)
    ]
    if entity.group_id:
        admin_ids += [
            m.user_id
            for m in GroupMembership.objects.filter(group_id=entity.group_id)
            if can(m.role, Capability.MANAGE_ENTITY_SECURITY)
        ]
    phones = (
        User.objects.filter(pk__in=admin_ids, is_active=True)
        .exclude(phone="")
        .order_by("pk")
        .values_list("phone", flat=True)
    )
    return list(dict.fromkeys(phones))


class ChallengeError(Exception):
    """Why a code could not be sent; `message` is safe to show."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def send_code(*, user, entity, ip, session_key, recipient, request, now):
    """Create or refresh the challenge and text a new code. Raises ChallengeError."""
    address = str(normalize_ip(ip))
    challenge = open_challenge(user, address, session_key, now)
    if exhausted(challenge):
        raise ChallengeError(TOO_MANY_FAILURES)
    if (
        challenge is not None
        and challenge.last_sent_at
        and now < challenge.last_sent_at + RESEND_AFTER
    ):
        wait = int((challenge.last_sent_at + RESEND_AFTER - now).total_seconds()) + 1
        raise ChallengeError(
            f"A code was sent less than a minute ago. Wait {wait} seconds to ask again."
        )
    if challenge is not None and challenge.sends >= MAX_SENDS:
        raise ChallengeError(
            "Too many codes were sent for this sign-in. Log out and sign in again later."
        )
    phones = recipients_for(user, entity, recipient)
    if not phones:
        record(
            "auth.ip.code_undeliverable",
            actor=user,
            entity=entity,
            request=request,
            data={"ip": address, "recipient": recipient},
        )
        who = "you" if recipient == CodeRecipient.USER else "the administrators"
        raise ChallengeError(
            f"No mobile phone number is on file for {who}, so no code can be sent. "
            "Ask an administrator of your company to add one."
        )
    try:
        ratelimit.spend_sms(
            user=user, entity=entity, ip=address, phones=phones, request=request, purpose="ip_code"
        )
    except ratelimit.SmsRefused as exc:
        raise ChallengeError(exc.message) from None
    if challenge is None:
        challenge = IpChallenge.objects.create(
            user=user, entity=entity, ip=address, session_key=session_key, recipient=recipient
        )
    code = f"{secrets.randbelow(10**6):06d}"
    IpChallenge.objects.filter(pk=challenge.pk).update(
        code_hash=_code_hash(challenge.pk, code),
        expires_at=now + CODE_VALIDITY,
        last_sent_at=now,
        sends=F("sends") + 1,
        sent_to=[mask_phone(p) for p in phones],
    )
    if recipient == CodeRecipient.USER:
        body = f"Your code to approve signing in from {address}: {code} (valid 10 minutes)."
    else:
        body = (
            f"{user.email} is signing in from {address}. If you expect this, give them this "
            f"code: {code} (valid 10 minutes)."
        )
    delivered = 0
    problem = None
    for phone in phones:
        try:
            send_sms(phone, body, entity=entity)
            delivered += 1
        except SmsError as exc:
            problem = exc
    record(
        "auth.ip.code_sent",
        actor=user,
        entity=entity,
        request=request,
        data={
            "ip": address,
            "recipient": recipient,
            "delivered": delivered,
            "failed": len(phones) - delivered,
        },
    )
    if not delivered:
        # Let the user ask again at once: nothing reached anyone.
        IpChallenge.objects.filter(pk=challenge.pk).update(last_sent_at=None)
        raise ChallengeError(problem.user_message)
    challenge.refresh_from_db()
    return challenge


def check_code(challenge, code, *, request, now):
    """Approve the address if `code` is right. Returns (approved, message)."""
    with transaction.atomic():
        challenge = IpChallenge.objects.select_for_update().get(pk=challenge.pk)
        if challenge.approved_at:
            return True, ""
        if exhausted(challenge):
            return False, TOO_MANY_FAILURES
        if not challenge.code_hash or challenge.expires_at is None or now >= challenge.expires_at:
            return False, "The code has expired. Ask for a new one."
        cleaned = "".join(ch for ch in str(code) if ch.isdigit())
        if not keyed_hash_matches(
            challenge.code_hash, "security.ip-challenge", f"{challenge.pk}:{cleaned}"
        ):
            challenge.failures += 1
            challenge.save(update_fields=["failures"])
            left = MAX_FAILURES - challenge.failures
            record(
                "auth.ip.code_failed",
                actor=challenge.user,
                entity=challenge.entity,
                request=request,
                data={"ip": challenge.ip, "tries_left": left},
            )
            if left <= 0:
                return False, TOO_MANY_FAILURES
            return False, f"That code is not right. {left} tr{'y' if left == 1 else 'ies'} left."
        challenge.approved_at = now
        challenge.save(update_fields=["approved_at"])
    return True, ""


def approve_address(challenge, policies, *, request, now):
    """Add the address, for this user, to every allowlist of `policies` it failed."""
    address = normalize_ip(challenge.ip)
    network = ipaddress.ip_network(address)
    created = []
    for policy in policies:
        if AllowedNetwork.objects.filter(
            policy=policy, network=str(network), for_user=challenge.user
        ).exists():
            continue
        created.append(
            AllowedNetwork.objects.create(
                policy=policy,
                network=str(network),
                label=f"Approved by code for {challenge.user.email}",
                for_user=challenge.user,
                created_by=challenge.user if challenge.recipient == CodeRecipient.USER else None,
                approved_by_challenge=challenge,
                created_at=now,
            )
        )
    record(
        "auth.ip.approved",
        actor=challenge.user,
        entity=challenge.entity,
        request=request,
        data={
            "ip": str(address),
            "challenge": challenge.pk,
            "recipient": challenge.recipient,
            "allowlists": [p.level for p in policies],
        },
    )
    return created


def would_pass(user, entity, ip, policies, edited, *, enabled=None, without_network=None):
    """Whether `ip` still passes after a change to `edited` (turning its allowlist on or
    off, or removing one of its networks): used to warn admins before they shut
    themselves out."""
    changed = copy.copy(edited)
    if enabled is not None:
        changed.ip_allowlist_enabled = enabled
    rows = [p for p in policies if p.pk != edited.pk] + [changed]
    context = context_for(user, entity, rows)
    if without_network is not None:
        removed = ipaddress.ip_network(without_network.network)
        context.allowlists = [
            [n for n in networks if not (p.pk == edited.pk and n == removed)]
            for p, networks in zip(context.policies, context.allowlists, strict=True)
        ]
    return address_allowed(ip, context)
