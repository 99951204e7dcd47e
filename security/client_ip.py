"""The client's IP address: the one resolver used by the audit log, the lockouts (and
django-axes, AXES_CLIENT_IP_CALLABLE), the password-reset limits and the IP allowlist.

The address comes from the socket. `X-Forwarded-For` is believed only when the request
came through TRUSTED_PROXY_COUNT proxies and the socket peer is one of them (an address in
TRUSTED_PROXY_NETWORKS): a request that reaches the web process directly cannot name its
own address. Then the address that the outermost trusted proxy saw is taken, counting
from the right, so a client cannot forge it by prepending entries. A malformed header
falls back to the socket address.

Each address has one spelling (`canonical_ip`): a dual-stack socket reports an IPv4
client as `::ffff:a.b.c.d`, which is read as `a.b.c.d`, so both count on one counter.
"""

import functools
import ipaddress

from django.conf import settings


def canonical_ip(value):
    """`value` as one spelling per address (an IPv4-mapped IPv6 address as its IPv4 form,
    IPv6 compressed), or None when it is not an address."""
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@functools.cache
def _networks(configured):
    return tuple(ipaddress.ip_network(network) for network in configured)


def from_trusted_proxy(remote):
    """Whether the socket peer `remote` is one of the configured proxies."""
    if remote is None:
        return False
    address = ipaddress.ip_address(remote)
    configured = tuple(getattr(settings, "TRUSTED_PROXY_NETWORKS", ()))
    return any(address in network for network in _networks(configured))


def client_ip(request):
    remote = canonical_ip(request.META.get("REMOTE_ADDR", ""))
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if not proxies or not from_trusted_proxy(remote):
        return remote
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in header.split(",")] if header else []
    if len(hops) < proxies:
        return remote
    # The last `proxies - 1` entries were added by our own inner proxies; the one before
    # them was appended by the outermost trusted proxy: that is the client it saw.
    candidate = canonical_ip(hops[-proxies])
    return candidate or remote
