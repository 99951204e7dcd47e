"""Django's PostgreSQL backend with a health check that costs no round trip when
nothing has happened to the connection.

With CONN_HEALTH_CHECKS, Django asks the server `SELECT 1` before the first statement of
every request on a reused connection: one more round trip for every page, sign-in and
document download (bench/README.md). Neither Django nor psycopg has a check without one,
so this is written here, through Django's documented extension point (a backend named in
ENGINE that subclasses the shipped one).

Between requests an idle connection has nothing to read. When the server ends it (a
restart, pg_terminate_backend, an idle timeout) it sends an error and closes the socket,
which makes the socket readable. So a reused connection whose socket has nothing to read
is used as it is; one with anything to read (or after an error in the previous request,
or outside the idle state) gets Django's own check, which asks the server and opens a new
connection if the old one is gone.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if (
            self.errors_occurred
            or connection.info.transaction_status != TransactionStatus.IDLE
            or self._socket_has_news(connection)
        ):
            return super().is_usable()
        return True

    @staticmethod
    def _socket_has_news(connection):
        """Whether the idle connection's socket has anything to read, an error or a
        hang-up (PostgreSQL sends nothing unasked to a session that does not LISTEN)."""
        try:
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            return bool(poller.poll(0))
        except (OSError, ValueError, base.Database.Error):
            return True
