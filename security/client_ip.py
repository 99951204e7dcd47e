"""The client's IP address: the one resolver used by the audit log (and later lockouts
and the IP allowlist).

The address comes from the socket. `X-Forwarded-For` is believed only when the request
came through TRUSTED_PROXY_COUNT proxies; then the address that the outermost trusted
proxy saw is taken, counting from the right, so a client cannot forge it by prepending
entries. A malformed header falls back to the socket address.
"""

import ipaddress

from django.conf import settings


def _valid(value):
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request):
    remote = _valid(request.META.get("REMOTE_ADDR", ""))
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if not proxies:
        return remote
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in header.split(",")] if header else []
    if len(hops) < proxies:
        return remote
    # The last `proxies - 1` entries were added by our own inner proxies; the one before
    # them was appended by the outermost trusted proxy: that is the client it saw.
    candidate = _valid(hops[-proxies])
    return candidate or remote
