"""The shared cache as a convenience, never a dependency: every product read of the cache
goes through `get_or_compute`, which computes the value from the database when the cache
(Redis) does not answer, and every invalidation through `delete`/`delete_many`, which
shrug off an unreachable cache (its entries expire on their own). A dead Redis costs a
page at most the socket timeouts of settings.CACHES, and one warning in the log per
request.

The SMS caps (security.ratelimit) do not use this module: they must fail closed.
"""

import contextvars
import logging

from django.core.cache import cache
from django.core.signals import request_started
from redis.exceptions import RedisError

logger = logging.getLogger("core.cache")

# What an unreachable or broken cache raises: redis-py's errors (ConnectionError,
# TimeoutError, ...) and the socket errors beneath them.
CACHE_ERRORS = (RedisError, OSError)

_warned = contextvars.ContextVar("core_cache_warned", default=False)


def _new_request(**kwargs):
    _warned.set(False)


request_started.connect(_new_request, dispatch_uid="core.cache.new_request")


def _warn(action, key, exc):
    if not _warned.get():
        _warned.set(True)
        logger.warning("The cache did not answer (%s %s), using the database: %s", action, key, exc)


def get_or_compute(key, compute, timeout):
    """The cached value of `key`, or `compute()` (stored for `timeout` seconds). When the
    cache cannot be reached the value is computed and nothing is stored."""
    try:
        value = cache.get(key)
    except CACHE_ERRORS as exc:
        _warn("reading", key, exc)
        return compute()
    if value is None:
        value = compute()
        try:
            cache.set(key, value, timeout)
        except CACHE_ERRORS as exc:
            _warn("writing", key, exc)
    return value


def delete(key):
    """Drop `key` from the cache; an unreachable cache is logged, not raised."""
    try:
        cache.delete(key)
    except CACHE_ERRORS as exc:
        _warn("deleting", key, exc)


def delete_many(keys):
    keys = list(keys)
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except CACHE_ERRORS as exc:
        _warn("deleting", keys[0], exc)
