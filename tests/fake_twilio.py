"""A fake Twilio REST API on 127.0.0.1 for tests that drive the real twilio client.

Use the `fake_twilio` fixture (import it into the test module). It answers
POST /2010-04-01/Accounts/<sid>/Messages.json the way Twilio does, checks the HTTP basic
auth credentials, records every request, and can be switched into failure modes:

    fake_twilio.mode = "ok" | "invalid_number" | "auth" | "rate_limited" | "server_error" | "slow"

`fake_twilio.settings()` returns the override_settings keyword arguments that point the
"twilio" SMS backend at the fake.
"""

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-" + "5" * 9
FROM_NUMBER = "+4740000000"
TIMEOUT_SECONDS = 1
MODES = ("ok", "invalid_number", "auth", "rate_limited", "server_error", "slow")


@dataclass
class ReceivedRequest:
    method: str
    path: str
    form: dict  # field name -> value (first value of each field)
    username: str | None  # HTTP basic-auth user name


@dataclass
class FakeTwilio:
    url: str = ""
    mode: str = "ok"
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    # "slow" answers after this long: longer than the client's timeout, but bounded.
    slow_seconds: float = TIMEOUT_SECONDS + 1
    requests: list = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def settings(self, **extra):
        return {
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "TWILIO_API_BASE_URL": self.url,
            "SMS_TIMEOUT_SECONDS": TIMEOUT_SECONDS,
            **extra,
        }


def _error_body(status, code, message):
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeTwilio/1.0"
    fake: FakeTwilio  # set on the per-server subclass

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _send_json(self, status, payload):
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer

    def _basic_auth(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None, None
        return user, password

    def do_GET(self):
        self._send_json(405, _error_body(405, 20004, "Method not allowed"))

    def do_POST(self):
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        form = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        username, password = self._basic_auth()
        fake.requests.append(ReceivedRequest("POST", self.path, form, username))

        if (username, password) != (fake.account_sid, fake.auth_token) or fake.mode == "auth":
            return self._send_json(401, _error_body(401, 20003, "Authenticate"))
        if self.path != f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json":
            return self._send_json(
                404, _error_body(404, 20404, f"The requested resource {self.path} was not found")
            )
        if fake.mode == "invalid_number":
            return self._send_json(
                400,
                _error_body(
                    400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number."
                ),
            )
        if fake.mode == "rate_limited":
            return self._send_json(429, _error_body(429, 20429, "Too Many Requests"))
        if fake.mode == "server_error":
            return self._send_json(500, _error_body(500, 20500, "Internal Server Error"))
        if fake.mode == "slow" and fake.stopping.wait(fake.slow_seconds):
            return  # the fixture is shutting down; drop the connection
        self._send_json(201, self._message(form))

    def _message(self, form):
        fake = self.fake
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        uri = f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json"
        return {
            "account_sid": fake.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body"),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": form.get("To"),
            "uri": uri,
        }


class _Server(ThreadingHTTPServer):
    # Join the request threads on close, so that no handler outlives the test.
    daemon_threads = False
    block_on_close = True


@pytest.fixture
def fake_twilio():
    fake = FakeTwilio()
    handler = type("BoundHandler", (Handler,), {"fake": fake})
    server = _Server(("127.0.0.1", 0), handler)
    host, port = server.server_address[:2]
    fake.url = f"http://{host}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()  # wakes "slow" handlers
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
