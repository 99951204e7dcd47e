"""The short-lived, link-bound session a customer link's token is exchanged for.

The URL in an email (/l/<token>/, /c/<token>/) is opened once: that GET exchanges the token
for a signed cookie bound to that link and to a fresh handle, and redirects to the clean
URL /l/open/<handle>/ (/c/open/<handle>/ for a consent link). From there on the token is in
no address bar, history entry, bookmark, request line, log line or Referer; the handle is
not a secret (it appears in logs): without its cookie it opens nothing.

The cookie is the credential of the clean URL. It is signed with SECRET_KEY over its name,
which carries the handle, so it can be neither forged nor moved to another handle; it holds
the link's id only (never the token), is HttpOnly, SameSite=Lax, Secure where the session
cookie is, scoped to the handle's path (two links open in two tabs keep two sessions) and
refused after SESSION_SECONDS. It lives no longer than the link: every request checks the
link itself again (expiry, withdrawal, uses, anonymisation). Nothing is stored server-side.

CSRF: the link pages are csrf_exempt (their `Referrer-Policy: no-referrer` makes browsers
post `Origin: null`, which Django's check refuses). A POST to the clean URL needs the
cookie, which SameSite=Lax keeps off cross-site POSTs, and the form key of the page
(form_key: an HMAC of the handle under SECRET_KEY) that only a page the cookie opened
shows; a POST to the token's own URL has the unguessable token as its credential.
"""

import re
import secrets

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import salted_hmac

from core.http import parse_int, private
from customers.links import Kind, log_view, problem_with
from security.client_ip import client_ip
from security.crypto import keyed_hash_matches

SESSION_SECONDS = 30 * 60
SALT = "customers.link_session"
HANDLE = re.compile(r"[A-Za-z0-9_-]{16}")


def new_handle():
    return secrets.token_urlsafe(12)  # 16 characters


def cookie_name(handle):
    # __Secure-: browsers keep it only when it came over HTTPS with Secure set. (__Host-
    # would also need Path=/, and the path is what scopes a session to its handle.)
    prefix = "__Secure-" if settings.SESSION_COOKIE_SECURE else ""
    return f"{prefix}link-{handle}"


def clean_path(link, handle):
    """The address a link's pages have once its token is exchanged."""
    name = "consent-self-service-open" if link.kind == Kind.CONSENT else "customer-link-open"
    return reverse(name, kwargs={"handle": handle})


def exchange(request, link, *, now):
    """The answer to the GET of a link's own URL: a redirect to a clean URL with a fresh
    link-bound session. The opening of a usable link is logged as an access that spends no
    use (what mail scanners do shows up so, and costs nothing); HEAD requests and the clean
    pages log nothing."""
    if problem_with(link, now) is None:
        log_view(
            link, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=now
        )
    handle = new_handle()
    path = clean_path(link, handle)
    response = HttpResponseRedirect(path)
    response.set_signed_cookie(
        cookie_name(handle),
        str(link.pk),
        salt=SALT,
        max_age=SESSION_SECONDS,
        path=path,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return private(response)


def session_link_id(request, handle):
    """The id of the link whose session this request carries for `handle`, or None (no
    cookie, a tampered or moved one, or one older than SESSION_SECONDS)."""
    if not HANDLE.fullmatch(handle):
        return None
    value = request.get_signed_cookie(
        cookie_name(handle), default=None, salt=SALT, max_age=SESSION_SECONDS
    )
    return parse_int(value)


def form_key(handle):
    """What the forms of a clean page carry: proof that the page was opened by the session."""
    return salted_hmac(f"{SALT}.form", handle).hexdigest()


def form_key_ok(request, handle):
    # A page opened before a key rotation still posts: the key is checked under fallbacks too.
    return keyed_hash_matches(request.POST.get("key", ""), f"{SALT}.form", handle)
