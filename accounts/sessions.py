"""Session engine: Django's database sessions, stored in `UserSession` with the user id.

Uses Django's documented extension point for database-backed session engines.
"""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DBStore


class SessionStore(DBStore):
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
