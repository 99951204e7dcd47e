"""Customer-link tokens never reach a log line.

A link's token is its credential for as long as the link works, so wherever a request path
is logged -- Django's request log ("Not Found: /l/<token>/", "Gone: ..."), runserver's and
gunicorn's access logs (config/gunicorn.py), tracebacks -- the path segment after /l/ or
/c/ shows its first 4 characters only. The clean URLs' /l/open/<handle>/ stay readable:
"open" is 4 characters, and the handle is no secret. Percent-escaped forms (/%6C/, %2F),
which Django decodes into the same route, are masked too.

Standard library only: gunicorn's master loads this before Django is set up.
"""

import logging
import re

_CHAR = r"(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2})"
_SLASH = r"(?:/|%2[Ff])"
LINK_TOKEN = re.compile(rf"({_SLASH}(?:l|c|%6[Cc]|%63){_SLASH})({_CHAR}{{4}}){_CHAR}+")
MASK = "****"
SHOWN = 4  # characters of a token a log line keeps, to tell links apart


def mask_link_tokens(text):
    """`text` with every customer-link token cut to its first 4 characters."""
    return LINK_TOKEN.sub(rf"\1\2{MASK}", text)


class MaskLinkTokens(logging.Filter):
    """A logging filter (config/settings.py LOGGING, config/gunicorn.py) that masks link
    tokens in a record's message and traceback. Never drops a record."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a malformed record is logging's to report
            return True
        masked = mask_link_tokens(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_link_tokens(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_link_tokens(record.stack_info)
        return True
