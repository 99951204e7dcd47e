"""Fixed-window counters in the shared cache (Redis in production), so every web process
and worker sees the same counts. Used to cap SMS sending, which costs money and can be
abused (SMS pumping)."""

from django.core.cache import cache


def hit(key, limit, window_seconds):
    """Count one use of `key`; False (and not counted) when the window's limit is reached."""
    cache_key = f"ratelimit:{key}"
    cache.add(cache_key, 0, timeout=window_seconds)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1, timeout=window_seconds)
        count = 1
    if count > limit:
        cache.decr(cache_key)
        return False
    return True
