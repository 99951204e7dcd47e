"""What happens when a value encrypted at rest cannot be read where it is stored.

A `security.crypto.DecryptionError` means the value was copied from another row, changed,
or made with a key no longer configured: a fault or an attack, never something the user
did. The page says so plainly (and shows nothing else of the row); this records it for
the administrators: a `security.decryption_failed` audit event naming the table, column
and row and the reason (never the value), and an error line in the server log.
"""

import logging

from security.audit import record

logger = logging.getLogger(__name__)


def report_unreadable(error, *, actor=None, entity=None, target=None, request=None):
    """Record `error` (a DecryptionError) for the administrators; returns the event."""
    binding = error.binding
    where = binding.audit_data() if binding is not None else {}
    logger.error(
        "Encrypted value cannot be decrypted: %s.%s row %s (%s)",
        where.get("table", "?"),
        where.get("column", "?"),
        where.get("row", "?"),
        error.reason,
    )
    return record(
        "security.decryption_failed",
        actor=actor,
        entity=entity,
        target=target,
        request=request,
        data={**where, "reason": error.reason},
    )
