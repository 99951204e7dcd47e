"""gunicorn's settings for the web process (`gunicorn --config config/gunicorn.py`, in
docker-compose.yml and the Dockerfile): the access and error logs mask customer-link
tokens to their first 4 characters (core.logging), as Django's own log does, and answers
carry no `Server` header. The format stays gunicorn's default; bind address, workers and
log files come from the command line.
"""

from gunicorn.glogging import Logger
from gunicorn.http import wsgi

from core.logging import MaskLinkTokens, mask_link_tokens


class TokenMaskingLogger(Logger):
    """gunicorn's logger, with every access-log atom (request line, path, query, Referer,
    headers) and every error-log line masked."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, MaskLinkTokens) for f in log.filters):
                log.addFilter(MaskLinkTokens())  # setup() runs again on each reload

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: mask_link_tokens(v) if isinstance(v, str) else v for k, v in atoms.items()}


logger_class = TokenMaskingLogger


# gunicorn writes "Server: gunicorn" on every answer and has no setting to leave it out;
# the product names no software it runs on (the proxy in front may add its own).
_gunicorn_headers = wsgi.Response.default_headers


def _headers_without_server(self):
    return [line for line in _gunicorn_headers(self) if not line.startswith("Server:")]


wsgi.Response.default_headers = _headers_without_server
