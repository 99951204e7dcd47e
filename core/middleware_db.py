"""A plain 503 page when the database cannot be reached or does not answer in time.

Without it, a refused or timed-out connection ends in Django's 500 handling (with
DEBUG, a traceback page naming the host). This middleware sits high in MIDDLEWARE. A
database error from the view reaches `process_exception`; one from a middleware below
(session, authentication, tenant and security middleware all read the database) has
already been turned into a 500 by Django's handler for that middleware, so the
`got_request_exception` signal marks the request and `__call__` replaces that 500. The
answer is `templates/503.html` (no database query, no details) with `Retry-After: 30`,
and one log line. The request is refused, never let through: the error only changes
which refusal page is shown.
"""

import logging
import sys

from django.core.signals import got_request_exception
from django.db import connections
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger("core.database")

UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
_MARK = "_database_unavailable"


def _mark_database_errors(sender, request=None, **kwargs):
    exception = sys.exc_info()[1]
    if request is not None and isinstance(exception, UNAVAILABLE):
        setattr(request, _MARK, exception)


got_request_exception.connect(_mark_database_errors, dispatch_uid="core.middleware_db")


def unavailable_response(request, exception):
    logger.warning(
        "database unavailable: %s %s answered 503 (%s)",
        request.method,
        request.path,
        type(exception).__name__,
    )
    # The connection is in an unknown state: let the next request open a new one.
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            response = self.get_response(request)
        except UNAVAILABLE as exception:
            return unavailable_response(request, exception)
        exception = getattr(request, _MARK, None)
        if exception is not None and response.status_code == 500:
            return unavailable_response(request, exception)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, UNAVAILABLE):
            return unavailable_response(request, exception)
        return None
