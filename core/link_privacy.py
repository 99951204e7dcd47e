"""Every answer under the customer-link paths (/l/..., /c/...) is private: `Cache-Control:
no-store`, `Referrer-Policy: no-referrer`, `X-Robots-Tag: noindex` (core.http.private) --
also the answers no link view makes: Django's 404 for an unknown route, 405, a redirect
adding a slash, a 500. A page opened from a link must leave no copy in a cache and send
no Referer: the clean URLs carry no token, but the link's own URL does until its first
answer (customers.link_session).

Listed first in settings.MIDDLEWARE, so its headers are the last word."""

import re

from core.http import private

LINK_PATHS = re.compile(r"/[lc](?:/|$)")


class PrivateLinkAnswersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if LINK_PATHS.match(request.path_info):
            private(response)
        return response
