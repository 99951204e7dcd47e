"""Link tokens never reach a log line. A full link flow -- document, invoice PDF,
customer's page and consent page opened, used and renewed, unknown tokens, routes that do
not exist, a missing slash -- is logged by Django's request log (caplog and the console
handler config/settings.py sets up), by runserver's request log, by gunicorn's access and
error loggers as config/gunicorn.py sets them up (the class, on each request of the flow;
and a real gunicorn, on PostgreSQL), and no token shows anywhere: only its first 4
characters."""

import http.client
import io
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import time_machine
import yaml
from django.db import connection
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger

from config.gunicorn import TokenMaskingLogger
from core.logging import MaskLinkTokens, mask_link_tokens
from customers.models import CustomerLink
from tests.helpers import (
    NOW,
    add_document,
    make_contact,
    make_invoice,
    make_link,
    set_privacy,
)

Kind = CustomerLink.Kind
ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r'name="key" value="([0-9a-f]+)"')


def assert_no_token(output, tokens):
    assert output, "nothing was logged"
    for token in tokens:
        assert token not in output, token
        # Nor any 8 characters of it past the 4 a line may show.
        for start in range(1, len(token) - 7):
            assert token[start : start + 8] not in output, (token, start)


def full_flow(client, book):
    """Every kind of link opened and used, plus every way to miss; returns (the tokens,
    every response)."""
    responses = []

    def hit(method, path, data=None):
        response = getattr(client, method)(path, data or {})
        responses.append(response)
        return response

    document = add_document(book.customer, name="contract.pdf")
    _, doc = make_link(book.customer, Kind.DOCUMENT, contact=book.kari, document=document)
    _, pdf = make_link(book.customer, Kind.INVOICE_PDF, contact=book.kari, invoice=book.open1)
    _, page = make_link(book.customer, Kind.INTERACTIVE, contact=book.kari)
    _, consent = make_link(book.customer, Kind.CONSENT, contact=book.kari)
    with time_machine.travel(NOW - timedelta(days=200), tick=False):
        _, expired = make_link(book.customer, Kind.DOCUMENT, contact=book.kari, document=document)
    tokens = [doc, pdf, page, consent, expired]

    for token in (doc, pdf, page):
        hit("head", f"/l/{token}/")
        first = hit("get", f"/l/{token}/")
        landing = hit("get", first["Location"])
        key = KEY.search(landing.content.decode()).group(1)
        if token == page:
            hit("post", f"{first['Location']}invoices/{book.open1.pk}/pdf/", {"key": key})
            hit("post", first["Location"], {"key": key, "action": "dispute"})
        else:
            hit("post", first["Location"], {"key": key})
        hit("post", first["Location"])  # no form key: 403
    first = hit("get", f"/c/{consent}/")
    hit("get", first["Location"])
    hit("post", first["Location"], {"policy_version": "x"})
    hit("post", f"/c/{consent}/", {"policy_version": "x"})
    hit("post", f"/l/{doc}/")  # the cookieless download
    hit("get", f"/l/{expired}/")
    hit("post", f"/l/{expired}/renew/")
    hit("post", f"/l/{expired}/renew/")  # 429
    for token in tokens:
        hit("get", f"/l/{token}/no-such-page/")  # 404
        hit("get", f"/l/{token}")  # 301 to the slash
    made_up = "Zq9" + doc[3:-3] + "Zq9"
    tokens.append(made_up)
    hit("get", f"/l/{made_up}/")  # 410
    hit("get", f"/c/{made_up}/")
    statuses = {r.status_code for r in responses}
    assert {200, 301, 302, 403, 404, 410, 429} <= statuses, statuses
    return tokens, responses


@pytest.fixture
def console_output():
    """What the handlers config/settings.py LOGGING sets up write (the console and
    runserver's), instead of stderr."""
    handlers = {
        handler
        for logger in (logging.getLogger(), logging.getLogger("django.server"))
        for handler in logger.handlers
        if any(isinstance(f, MaskLinkTokens) for f in handler.filters)
    }
    assert len(handlers) == 2, "the console and django.server handlers mask tokens"
    stream = io.StringIO()
    old = {handler: handler.setStream(stream) for handler in handlers}
    yield stream
    for handler, previous in old.items():
        handler.setStream(previous)


def test_djangos_request_log_shows_no_token(client, book, caplog, console_output):
    with caplog.at_level(logging.DEBUG):
        tokens, _ = full_flow(client, book)
        # runserver's request line, as django.core.servers.basehttp logs it.
        logging.getLogger("django.server").info(
            '"%s" %s %s', f"GET /l/{tokens[0]}/ HTTP/1.1", "302", "0"
        )

    logged = caplog.text
    assert "Gone: /l/" in logged and "Not Found: /l/" in logged and "Forbidden: /l/" in logged
    assert f"/l/{tokens[0][:4]}****/" in logged
    assert_no_token(logged, tokens)
    written = console_output.getvalue()
    assert "Gone: /l/" in written and f'"GET /l/{tokens[0][:4]}****/ HTTP/1.1" 302' in written
    assert_no_token(written, tokens)


def test_the_filter_masks_tracebacks_and_keeps_every_record(caplog):
    token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"
    logger = logging.getLogger("django.request")
    with caplog.at_level(logging.ERROR, logger="django.request"):
        try:
            raise ValueError(f"while serving /c/{token}/")
        except ValueError:
            logger.exception("Internal Server Error: %s", f"/l/{token}/")
        logger.error("100%% of /l/%s/ odd %s", token, "args")

    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]
    assert "ValueError: while serving /c/AbCd****/" in caplog.text
    assert "100% of /l/AbCd****/ odd args" in caplog.text
    assert_no_token(caplog.text, [token])


def test_the_mask_keeps_clean_urls_and_escaped_tokens_masked():
    token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"
    assert mask_link_tokens("/l/open/HaNdLe0123456789/renew/") == "/l/open/HaNdLe0123456789/renew/"
    assert mask_link_tokens(f"GET /c/{token}/?x=1 HTTP/1.1") == "GET /c/AbCd****/?x=1 HTTP/1.1"
    # Django decodes these into the same route; the raw request line keeps them escaped.
    for raw in (f"/%6C/{token}/", f"/l%2F{token}/", f"/l/%41{token[1:]}/"):
        assert_no_token(mask_link_tokens(raw), [token[1:]])


# --- gunicorn ----------------------------------------------------------------------------


def test_the_production_gunicorn_commands_use_the_masking_config():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    script = compose["services"]["web"]["command"][-1]
    web = shlex.split(script.split("exec ", 1)[1])
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    image = yaml.safe_load(cmd)
    for argv in (web, image):
        assert argv[0] == "gunicorn"
        options = GunicornConfig().parser().parse_args(argv[1:])
        assert options.config == "config/gunicorn.py", argv
    # The file as gunicorn reads it: its logger_class is the masking one.
    namespace = {}
    exec(
        compile((ROOT / "config/gunicorn.py").read_text(), "config/gunicorn.py", "exec"), namespace
    )
    cfg = GunicornConfig()
    cfg.set("logger_class", namespace["logger_class"])
    assert cfg.logger_class.__qualname__ == TokenMaskingLogger.__qualname__
    assert issubclass(cfg.logger_class, Logger)


@pytest.fixture
def gunicorn_logger(tmp_path):
    cfg = GunicornConfig()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    logger = TokenMaskingLogger(cfg)
    yield logger, tmp_path / "access.log", tmp_path / "error.log"
    for log in (logger.access_log, logger.error_log):
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
        for f in list(log.filters):
            log.removeFilter(f)


def test_gunicorns_access_and_error_logs_show_no_token(client, book, gunicorn_logger):
    logger, access, errors = gunicorn_logger
    tokens, responses = full_flow(client, book)

    for response in responses:
        environ = dict(response.wsgi_request.environ)
        query = environ.get("QUERY_STRING")
        environ["RAW_URI"] = quote(environ["PATH_INFO"]) + (f"?{query}" if query else "")
        environ["HTTP_REFERER"] = f"http://testserver{environ['RAW_URI']}"
        headers = [
            (k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")
        ]
        logger.access(
            SimpleNamespace(
                status=f"{response.status_code} {response.reason_phrase}",
                headers=list(response.items()),
                sent=0,
            ),
            SimpleNamespace(headers=headers),
            environ,
            timedelta(milliseconds=3),
        )
        logger.exception("Error handling request %s", environ["RAW_URI"])
    for handler in logger.access_log.handlers + logger.error_log.handlers:
        handler.flush()

    lines = access.read_text()
    assert len(lines.splitlines()) == len(responses)
    assert f'"GET /l/{tokens[0][:4]}****/ HTTP/1.1" 302' in lines
    assert f'"http://testserver/l/{tokens[0][:4]}****/"' in lines  # the Referer
    assert_no_token(lines, tokens)
    assert "Error handling request /l/" in errors.read_text()
    assert_no_token(errors.read_text(), tokens)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, cookies=None, form=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": "127.0.0.1"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = None
    if form is not None:
        body = "&".join(f"{k}={quote(str(v))}" for k, v in form.items())
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    content = response.read()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar = SimpleCookie()
        jar.load(header)
        if cookies is not None:
            cookies.update({name: morsel.value for name, morsel in jar.items()})
    conn.close()
    return response.status, response.headers, content


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a real gunicorn needs the test database from another process: PostgreSQL",
)
def test_a_real_gunicorn_logs_no_token(transactional_db, world, tmp_path):
    contact = make_contact(world.a)
    set_privacy(world.a, version="v1")
    invoice = make_invoice(contact.customer, "F-1001", "1000.00")
    _, pdf = make_link(contact.customer, Kind.INVOICE_PDF, contact=contact, invoice=invoice)
    _, page = make_link(contact.customer, Kind.INTERACTIVE, contact=contact)
    _, consent = make_link(contact.customer, Kind.CONSENT, contact=contact)
    tokens = [pdf, page, consent, "Zq9" + pdf[3:-3] + "Zq9"]

    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"postgres://{quote(db['USER'])}{password}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    port = free_port()
    access, errors, output = (tmp_path / n for n in ("access.log", "error.log", "out.log"))
    argv = [
        sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.py",
        "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--access-logfile", str(access), "--error-logfile", str(errors), "--log-level", "info",
    ]  # fmt: skip
    with open(output, "w") as out:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, last = time.monotonic() + 120, None
        while True:
            assert server.poll() is None, output.read_text()[-2000:] + errors.read_text()
            try:
                last = request(port, "GET", "/healthz")[0]
                if last == 200:
                    break
            except OSError as exc:
                last = exc
            assert time.monotonic() < deadline, (last, output.read_text(), errors.read_text())
            time.sleep(0.2)
        # The product names no server software (config/gunicorn.py).
        assert "Server" not in request(port, "GET", "/healthz")[1]

        statuses = []
        for token, prefix in ((pdf, "l"), (page, "l"), (consent, "c")):
            cookies = {}
            statuses.append(request(port, "HEAD", f"/{prefix}/{token}/")[0])
            status, headers, _ = request(port, "GET", f"/{prefix}/{token}/", cookies)
            statuses.append(status)
            clean = headers["Location"]
            status, _, body = request(port, "GET", clean, cookies)
            statuses.append(status)
            key = KEY.search(body.decode()).group(1)
            if token == pdf:
                status, _, body = request(port, "POST", clean, cookies, {"key": key})
                assert body.startswith(b"%PDF")
                statuses.append(status)
            statuses.append(request(port, "POST", clean, cookies, {"policy_version": "x"})[0])
        for token in tokens:
            statuses.append(request(port, "GET", f"/l/{token}/")[0])
            statuses.append(request(port, "GET", f"/l/{token}/nothing/")[0])
        assert {200, 302, 403, 404, 410} <= set(statuses), statuses
    finally:
        server.send_signal(signal.SIGTERM)  # the gunicorn master this test started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)

    lines = access.read_text()
    assert len(lines.splitlines()) >= len(statuses)
    assert f'"GET /l/{pdf[:4]}****/ HTTP/1.1" 302' in lines
    assert '"POST /c/open/' in lines
    everything = lines + errors.read_text() + output.read_text()
    assert "Gone: /l/" in everything and "Not Found: /l/" in everything
    assert_no_token(everything, tokens)
