"""Session engine: Django's database sessions, stored in `UserSession` with the user id.

Uses Django's documented extension point for database-backed session engines.
"""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.db import IntegrityError, router, transaction
from django.utils.crypto import get_random_string


class SessionStore(DBStore):
    """At sign-in, the new session is written once, when the response is sent (one
    INSERT).

    Django's database engine, when it gives a session a new key (`cycle_key`, at every
    sign-in), checks that the key is free (a SELECT), writes the session at once (an
    INSERT in a savepoint) and writes it again at the end of the request (an UPDATE):
    four round trips more on every sign-in. A key is 32 random characters (165 bits),
    all but never taken; if it were, the INSERT fails on the primary key and another key
    is drawn. `create()` keeps Django's behaviour (it stores at once).
    """

    _key_stored = True  # False from `cycle_key()` until the next save

    def cycle_key(self):
        data = self._session
        old_key = self.session_key
        self._session_key = get_random_string(32, VALID_KEY_CHARS)
        self._key_stored = False
        self._session_cache = data
        self.modified = True
        if old_key:
            self.delete(old_key)

    def save(self, must_create=False):
        if self._key_stored or self.session_key is None:
            return super().save(must_create=must_create)
        while True:
            try:
                self._insert()
            except CreateError:
                self._session_key = get_random_string(32, VALID_KEY_CHARS)
                continue
            self._key_stored = True
            return

    def _insert(self):
        obj = self.create_model_instance(self._get_session(no_load=True))
        using = router.db_for_write(self.model, instance=obj)
        if transaction.get_connection(using).in_atomic_block:
            # Django's save: in a savepoint, so a taken key leaves the transaction usable.
            return super().save(must_create=True)
        try:
            obj.save(force_insert=True, using=using)  # autocommit: one statement
        except IntegrityError:
            raise CreateError from None

    @classmethod
    def get_model_class(cls):
        from accounts.models import UserSession

        return UserSession

    def create_model_instance(self, data):
        instance = super().create_model_instance(data)
        try:
            instance.user_id = int(data.get(SESSION_KEY))
        except (TypeError, ValueError):
            instance.user_id = None
        return instance


def end_sessions(user_ids, keep_session_key=None):
    """End every session of these users (but the one to keep). Returns how many."""
    from accounts.models import UserSession

    sessions = UserSession.objects.filter(user_id__in=list(user_ids))
    if keep_session_key:
        sessions = sessions.exclude(session_key=keep_session_key)
    deleted, _ = sessions.delete()
    return deleted
