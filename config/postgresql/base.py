"""Django's PostgreSQL backend with a health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django asks the server `SELECT 1` before the first statement of
every request on a reused connection: one more round trip for every page, sign-in and
document download (bench/README.md). Neither Django nor psycopg checks a connection
without one, so this is written here, through Django's documented extension point (a
backend named in ENGINE that subclasses the shipped one).

A reused connection is checked locally instead: psycopg's state (closed, broken) and its
socket. Between requests an idle connection has nothing to read; when the server ends it
(a restart, pg_terminate_backend, an idle timeout) it sends an error and closes the
socket, which makes the socket readable. Such a connection is closed, and Django opens a
new one for the request's first statement, as after a failed `SELECT 1`. After an error
in the previous request, or outside the idle state, the server is still asked.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if self.errors_occurred or connection.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        try:
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            # Anything to read, an error or a hang-up on an idle connection: the server
            # has ended it (PostgreSQL sends nothing unasked to a session that does not LISTEN).
            return not poller.poll(0)
        except (OSError, ValueError, base.Database.Error):
            return False
