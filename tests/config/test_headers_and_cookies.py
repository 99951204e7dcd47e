"""Cookies and headers: in production the session and CSRF cookies carry the __Host- prefix
(Secure, Path=/, no Domain), and every answer turns off browser features the product does
not use and keeps its resources to its own origin."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.config.test_settings_env import GOOD_PRODUCTION
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def production_setting(*names):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    base.pop("REDIS_URL", None)
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**base, **GOOD_PRODUCTION},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_cookies_carry_the_host_prefix():
    values = production_setting(
        "SESSION_COOKIE_NAME",
        "CSRF_COOKIE_NAME",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_DOMAIN",
        "CSRF_COOKIE_DOMAIN",
        "SESSION_COOKIE_PATH",
        "CSRF_COOKIE_PATH",
    )
    assert values == {
        "SESSION_COOKIE_NAME": "__Host-sessionid",
        "CSRF_COOKIE_NAME": "__Host-csrftoken",
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_DOMAIN": None,
        "CSRF_COOKIE_DOMAIN": None,
        "SESSION_COOKIE_PATH": "/",
        "CSRF_COOKIE_PATH": "/",
    }


@override_settings(
    SESSION_COOKIE_NAME="__Host-sessionid",
    CSRF_COOKIE_NAME="__Host-csrftoken",
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
)
def test_a_sign_in_sets_host_prefixed_cookies_a_browser_accepts(world, client):
    page = client.get(reverse("login"), secure=True)
    csrf = page.cookies["__Host-csrftoken"]
    response = client.post(
        reverse("login"),
        {"username": world.main_admin.email, "password": PASSWORD},
        secure=True,
    )
    assert response.status_code == 302
    session = response.cookies["__Host-sessionid"]
    # What a browser requires of a __Host- cookie: Secure, Path=/, no Domain.
    for cookie in (csrf, session):
        assert cookie["secure"] is True and cookie["path"] == "/" and not cookie["domain"]


@pytest.mark.parametrize("path", ["login", "password_reset"])
def test_every_answer_turns_off_unused_features_and_keeps_to_its_origin(client, path):
    response = client.get(reverse(path))
    policy = {
        part.split("=")[0].strip(): part.split("=")[1].strip()
        for part in response.headers["Permissions-Policy"].split(",")
    }
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert policy[feature] == "()"
    assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_an_error_answer_carries_them_too(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]
