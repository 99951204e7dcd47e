"""Junk input never gets a server error.

The URL configuration is walked, so a new page joins this test by existing: each page is
fetched as an admin and as the main admin, and every form on it is submitted once per
field with that field set to junk (a NUL character, which PostgreSQL text cannot hold;
a number too big for any column; 5,000 characters) and the other fields as the page
filled them. Every route is also requested anonymously, with a made-up token where it
takes one. A clear message is the expected answer; a 500 fails here.
"""

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from accounts.roles import Role
from tests.conftest import PASSWORD, work_in
from tests.factories import OBJECT_FACTORIES
from tests.test_isolation import TOKEN_ROUTES, walk

JUNK = ["bad\x00value", "99999999999999999999999", "a" * 5000]


class FormReader(HTMLParser):
    """Each form of a page: its method, its action and its fields with the values the page
    gave them (the first option of a select, checked boxes only)."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self._form = self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = {
                "method": (attrs.get("method") or "get").lower(),
                "action": attrs.get("action") or "",
                "fields": {},
            }
            self.forms.append(self._form)
            return
        name = attrs.get("name")
        if self._form is None or (not name and tag != "option"):
            return
        fields = self._form["fields"]
        if tag == "input":
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                fields.setdefault(name, "")
            elif attrs.get("type") != "file":
                fields[name] = attrs.get("value", "")
        elif tag == "select":
            self._select = name
            fields[name] = None
        elif tag == "option" and self._select and fields.get(self._select) is None:
            fields[self._select] = attrs.get("value", "")
        elif tag == "textarea":
            self._textarea = name
            fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            self._form["fields"][self._textarea] += data


def forms_of(html):
    reader = FormReader()
    reader.feed(html)
    return reader.forms


ROUTES = [(route, pattern) for route, pattern in walk(get_resolver().url_patterns) if pattern.name]


def url_for(pattern, world):
    converters = getattr(pattern.pattern, "converters", {})
    if not converters:
        return reverse(pattern.name)
    if pattern.name in TOKEN_ROUTES:
        kwargs = {name: 1 if name.endswith("_id") else "made-up-token" for name in converters}
        return reverse(pattern.name, kwargs=kwargs)
    model = pattern.callback.view_class.model  # test_isolation holds every such view to this
    return reverse(pattern.name, kwargs={"pk": OBJECT_FACTORIES[model](world.a).pk})


def test_the_form_reader_reads_what_a_browser_would_send():
    [form] = forms_of(
        '<form method="post" action="/x/"><input name="a" value="1">'
        '<input type="checkbox" name="b" value="on"><input type="checkbox" name="c" checked '
        'value="on"><select name="d"><option value="7">7</option><option value="8">8</option>'
        '</select><textarea name="e">text</textarea><input type="file" name="f"></form>'
    )
    assert form == {
        "method": "post",
        "action": "/x/",
        "fields": {"a": "1", "b": "", "c": "on", "d": "7", "e": "text"},
    }


@pytest.mark.parametrize(("route", "pattern"), ROUTES, ids=[route for route, _ in ROUTES])
def test_junk_gets_an_answer_not_a_server_error(route, pattern, world, client):
    url = url_for(pattern, world)
    anonymous = Client()
    for junk in JUNK:
        for method in ("get", "post"):
            response = getattr(anonymous, method)(url, {"username": junk, "q": junk})
            assert response.status_code < 500, (method, url, junk)

    submitted = 0
    for user in (world.users[Role.ADMIN], world.main_admin):
        work_in(client, user, world.a)
        page = client.get(url)
        if page.status_code != 200 or page.streaming:
            continue
        for form in forms_of(page.content.decode()):
            action = form["action"] if form["action"].startswith("/") else url
            fields = {k: v or "" for k, v in form["fields"].items() if k != "csrfmiddlewaretoken"}
            for name in fields:
                for junk in JUNK:
                    work_in(client, user, world.a)  # a submitted form may sign out or switch
                    response = getattr(client, form["method"])(action, {**fields, name: junk})
                    assert response.status_code < 500, (form["method"], action, name, junk)
                    submitted += 1
    if route == "settings/security/":
        assert submitted > 0, "the settings page's form was not found"


def test_a_username_with_a_nul_character_is_refused_and_counted_against_the_address(world, client):
    from security.models import LoginThrottle

    response = client.post(
        "/accounts/login/",
        {"username": world.users[Role.ADMIN].email + "\x00", "password": PASSWORD},
    )

    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
    assert list(LoginThrottle.objects.values_list("kind", "failures")) == [("ip", 1)]
