"""Sessions at sign-in: a new key, the old session gone, the new one written once."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import sessions
from accounts.models import UserSession
from tests.helpers import sign_in


def test_signing_in_replaces_the_session_and_writes_the_new_one_once(world, client):
    client.get("/accounts/login/")
    session = client.session
    session["before"] = "kept"
    session.save()
    old_key = session.session_key

    with CaptureQueriesContext(connection) as queries:
        response = sign_in(client, world.main_admin)

    assert response.status_code == 302
    new_key = client.cookies["sessionid"].value
    assert new_key != old_key
    assert not UserSession.objects.filter(session_key=old_key).exists()
    stored = UserSession.objects.get(session_key=new_key)
    assert stored.user_id == world.main_admin.pk
    assert stored.get_decoded()["before"] == "kept"
    session_writes = [
        q["sql"].split()[0]
        for q in queries.captured_queries
        if "accounts_usersession" in q["sql"] and not q["sql"].startswith("SELECT")
    ]
    assert session_writes == ["DELETE", "INSERT"]
    # The new session works.
    assert client.get("/").status_code in (200, 302)
    assert client.get("/accounts/login/").wsgi_request.user == world.main_admin


def test_a_key_already_taken_at_sign_in_is_replaced_by_another(world, client, monkeypatch):
    taken = UserSession.objects.create(
        session_key="k" * 32, session_data="", expire_date="2099-01-01T00:00Z"
    )
    keys = iter(["k" * 32, "f" * 32])
    monkeypatch.setattr(sessions, "get_random_string", lambda *args: next(keys))

    response = sign_in(client, world.main_admin)

    assert response.status_code == 302
    assert client.cookies["sessionid"].value == "f" * 32
    assert UserSession.objects.get(session_key="f" * 32).user_id == world.main_admin.pk
    taken.refresh_from_db()
    assert taken.user_id is None  # the other session is untouched


def test_a_session_flushed_after_a_new_key_is_stored_once_under_one_key(db):
    store = sessions.SessionStore()
    store["a"] = 1
    store.save()
    store.cycle_key()
    store.flush()
    store["b"] = 2
    store.save()
    store.save()
    assert list(UserSession.objects.values_list("session_key", flat=True)) == [store.session_key]
    assert UserSession.objects.get().get_decoded() == {"b": 2}
