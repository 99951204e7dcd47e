"""Fixed-window counters in the shared cache (Redis in production), so every web process
and worker sees the same counts. Used to cap SMS sending, which costs money and can be
abused (SMS pumping).

`spend_sms` is the one door every text message of the product goes through before it is
sent: it counts the message against each cap (`SMS_CAPS`: per user, per client address,
per entity and per number prefix) and refuses when one is reached, with an audit event.
When the cache cannot be reached nothing is sent (fail closed): a cap that cannot count
does not protect anything.
"""

import logging
from dataclasses import dataclass

from django.core.cache import cache
from redis.exceptions import RedisError

from security.audit import record
from security.sms import USER_MESSAGE_UNAVAILABLE

logger = logging.getLogger("security.ratelimit")

TOO_MANY = "Too many codes were requested. Try again later."
# Numbers equal but for their last digits count together: a fraudster pumping SMS rents
# consecutive numbers of one range.
PREFIX_HIDDEN_DIGITS = 4


class Unavailable(Exception):
    """The shared cache did not answer, so nothing can be counted."""


def hit(key, limit, window_seconds):
    """Count one use of `key`; False (and not counted) when the window's limit is reached.
    Raises Unavailable when the cache cannot be reached."""
    cache_key = f"ratelimit:{key}"
    try:
        cache.add(cache_key, 0, timeout=window_seconds)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=window_seconds)
            count = 1
        if count > limit:
            cache.decr(cache_key)
            return False
    except (RedisError, OSError) as exc:
        logger.error("Rate limit %s not counted, the cache did not answer: %s", key, exc)
        raise Unavailable(str(exc)) from None
    return True


@dataclass(frozen=True)
class Cap:
    name: str  # in the audit event's "limit"
    limit: int
    window_seconds: int


USER_CAP = Cap("user", 5, 3600)
IP_CAP = Cap("ip", 10, 3600)
# Per sending; a sending to several administrators raises its limit as many times (as
# before this module held the caps).
ENTITY_CAP = Cap("entity", 200, 86400)
# Across the platform: every user and entity texting numbers of one range.
PREFIX_CAP = Cap("prefix", 10, 3600)
SMS_CAPS = (USER_CAP, IP_CAP, ENTITY_CAP, PREFIX_CAP)


def number_prefix(e164):
    """The number without its last PREFIX_HIDDEN_DIGITS digits ("+4791234567" -> "+479123")."""
    return e164[:-PREFIX_HIDDEN_DIGITS]


class SmsRefused(Exception):
    """A text message may not be sent now; `message` is safe to show."""

    def __init__(self, message, cap):
        super().__init__(message)
        self.message = message
        self.cap = cap  # the Cap reached, or None when the cache did not answer


def spend_sms(*, user, entity, ip, phones, request, purpose):
    """Count a text to each of `phones` (E.164) against every cap, or raise SmsRefused
    (after an audit event) when one is reached or the cache cannot count. `purpose` says
    what the text is for in the event ("ip_code", "phone_confirmation")."""
    entity_id = entity.pk if entity is not None else "none"
    prefixes = list(dict.fromkeys(number_prefix(phone) for phone in phones))
    counts = [
        (USER_CAP, f"sms:user:{user.pk}", 1),
        (IP_CAP, f"sms:ip:{ip}", 1),
        (ENTITY_CAP, f"sms:entity:{entity_id}", len(phones)),
    ] + [(PREFIX_CAP, f"sms:prefix:{prefix}", 1) for prefix in prefixes]
    for cap, key, weight in counts:
        try:
            allowed = hit(key, cap.limit * weight, cap.window_seconds)
        except Unavailable:
            record(
                "sms.rate_limit_unavailable",
                actor=user,
                entity=entity,
                request=request,
                data={"limit": cap.name, "ip": ip, "purpose": purpose},
            )
            raise SmsRefused(USER_MESSAGE_UNAVAILABLE, None) from None
        if not allowed:
            data = {"limit": cap.name, "ip": ip, "purpose": purpose}
            if cap is PREFIX_CAP:
                data["prefix"] = key.rsplit(":", 1)[1] + "X" * PREFIX_HIDDEN_DIGITS
            record("sms.rate_limited", actor=user, entity=entity, request=request, data=data)
            raise SmsRefused(TOO_MANY, cap)
