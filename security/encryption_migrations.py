"""The data migrations that bind encrypted values to their rows (customers 0007, security
0008) share this: every legacy Fernet value of a column becomes a bound AES-GCM value
(security.crypto), and back when the migration is reversed.

All or nothing: a value no configured key decrypts stops the migration (inside its
transaction) with the rows named, so a deploy with keys missing from FIELD_ENCRYPTION_KEYS
fails loudly instead of leaving values that can no longer be read. Values already in the
target format are left as they are, so running again is harmless; so are values in
neither format (they could not be read before either).
"""

from security.crypto import Binding, DecryptionError, bind_legacy, is_bound, is_legacy, unbind


def convert(model, column, owner_column, *, bind):
    """Bind (or, with bind=False, unbind) every value of `model.column`, each to its row
    and the row's `owner_column` (entity_id, user_id). Returns how many changed."""
    changed, failed = 0, []
    rows = model._base_manager.order_by("pk").values_list("pk", column, owner_column)
    wanted = is_legacy if bind else is_bound
    for pk, value, owner in list(rows):
        if wanted(value):
            binding = Binding(model._meta.db_table, column, pk, owner)
            try:
                new = bind_legacy(value, binding) if bind else unbind(value, binding)
            except DecryptionError:
                failed.append(pk)
                continue
            model._base_manager.filter(pk=pk).update(**{column: new})
            changed += 1
    if failed:
        shown = ", ".join(str(pk) for pk in failed[:20]) + (" ..." if len(failed) > 20 else "")
        raise RuntimeError(
            f"{model._meta.db_table}.{column}: {len(failed)} value(s) no key in "
            f"FIELD_ENCRYPTION_KEYS decrypts (rows {shown}). Set every key they were made "
            "with (newest first) and migrate again; nothing was changed."
        )
    return changed
