"""Static files served by the product itself (WhiteNoise): with DEBUG off, pages reference
content-hashed names that answer 200 with a long cache, gzip and brotli variants beside."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import override_settings
from django.utils.module_loading import import_string
from whitenoise.storage import CompressedManifestStaticFilesStorage

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "config.staticfiles.StaticFilesStorage"},
}
HASHED_CSS = re.compile(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"')


def test_the_real_settings_hash_and_compress_static_files_when_debug_is_off():
    # config.test_settings keeps the plain storage for speed; the real one, DEBUG off:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "false"}
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.STORAGES['staticfiles']['BACKEND']);"
        "print(s.MIDDLEWARE.index('whitenoise.middleware.WhiteNoiseMiddleware')"
        " - s.MIDDLEWARE.index('django.middleware.security.SecurityMiddleware'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    backend, distance = out.stdout.split()
    assert distance == "1"  # right after SecurityMiddleware
    storage = import_string(backend)
    assert issubclass(storage, CompressedManifestStaticFilesStorage)


@pytest.fixture
def collected(tmp_path):
    root = tmp_path / "static"
    with override_settings(DEBUG=False, STATIC_ROOT=root, STORAGES=PRODUCTION_STORAGES):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root


def test_a_page_references_hashed_css_served_with_a_year_of_cache(db, client, collected):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    (css_url,) = set(HASHED_CSS.findall(page.content.decode()))
    assert "style-src 'self'" in page["Content-Security-Policy"]

    response = client.get(css_url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert "max-age=315360000" in response["Cache-Control"]
    assert "immutable" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert body == (BASE_DIR / "static/css/app.css").read_bytes()


def test_gzip_and_brotli_variants_are_written_and_served(db, client, collected):
    page = client.get("/accounts/login/")
    (css_url,) = set(HASHED_CSS.findall(page.content.decode()))
    name = css_url.removeprefix("/static/")
    assert (collected / (name + ".gz")).is_file()
    assert (collected / (name + ".br")).is_file()

    response = client.get(css_url, HTTP_ACCEPT_ENCODING="br, gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "br"
    response = client.get(css_url, HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"


def test_an_unknown_static_file_is_a_404(db, client, collected):
    assert client.get("/static/css/app.000000000000.css").status_code == 404


def test_without_collectstatic_pages_still_render_and_readiness_says_static(
    db, client, tmp_path, settings
):
    # An operator who forgot collectstatic gets unstyled pages and a failing /readyz, not a
    # 500 on every page.
    settings.MEDIA_ROOT = tmp_path / "media"
    with override_settings(
        DEBUG=False, STATIC_ROOT=tmp_path / "empty", STORAGES=PRODUCTION_STORAGES
    ):
        page = client.get("/accounts/login/")
        ready = client.get("/readyz")
    assert page.status_code == 200
    assert 'href="/static/css/app.css"' in page.content.decode()
    assert ready.status_code == 503
    assert ready.json()["checks"]["static"] == "failed"
    assert ready.json()["checks"]["database"] == "ok"


def test_after_collectstatic_readiness_says_static_ok(db, client, collected, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["static"] == "ok"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, path, **headers):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": "127.0.0.1", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_a_real_gunicorn_serves_hashed_css_and_is_ready(db, tmp_path):
    # What following docker-compose.yml gives: collectstatic, then gunicorn, DEBUG off.
    database = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}"
        f":{database['PORT'] or 5432}/{database['NAME']}",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    done = subprocess.run(collect, cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    port = _free_port()
    output = tmp_path / "gunicorn.log"
    argv = [
        sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.py",
        "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
    ]  # fmt: skip
    with open(output, "w") as out:
        server = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, output.read_text()[-2000:]
            try:
                if _get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, output.read_text()[-2000:]
            time.sleep(0.2)

        status, _, page = _get(port, "/accounts/login/")
        assert status == 200
        (css_url,) = set(HASHED_CSS.findall(page.decode()))
        status, headers, body = _get(port, css_url, **{"Accept-Encoding": "gzip"})
        assert status == 200
        assert headers["Content-Type"].startswith("text/css")
        assert headers["Content-Encoding"] == "gzip"
        assert "max-age=315360000" in headers["Cache-Control"]

        status, _, body = _get(port, "/readyz")
        assert status == 200, body
    finally:
        server.send_signal(signal.SIGTERM)  # the gunicorn master this test started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
