"""gunicorn servers on 127.0.0.1 and a bounded keep-alive HTTP load generator.

The load generator is threads + http.client (no third-party tools): each thread keeps one
connection open and sends requests (GET, or a form POST) back to back until its deadline,
so a run is bounded by time whatever the server does.
"""

import ctypes
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# The same gunicorn shape for the product and the baseline: a gthread worker so
# connections stay open between requests (sync workers close them after each response).
# One worker: with two, a worker accepts keep-alive connections as they come and
# sometimes took all four of a run while the other stayed idle, which halved that
# run's throughput whatever the code (3 runs in 8, measured from the workers' CPU
# time). One worker serves every connection of every run.
WORKERS = 1
THREADS = 1


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent():
    """Runs in the child before exec: SIGTERM the server if this harness dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    """One gunicorn master we started (and only that one is ever stopped)."""

    def __init__(self, name, settings_module, logdir, env=None):
        self.name = name
        self.settings_module = settings_module
        self.port = free_port()
        self.log_path = Path(logdir) / f"gunicorn-{name}.log"
        self.env = dict(os.environ if env is None else env)
        self.env["DJANGO_SETTINGS_MODULE"] = settings_module
        self.proc = None

    def start(self, timeout=30):
        cmd = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"{HOST}:{self.port}",
            "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
            "--keep-alive", "30", "--timeout", "120", "--graceful-timeout", "5",
            "--log-level", "warning", "--pid", str(self.log_path.with_suffix(".pid")),
        ]  # fmt: skip
        self.log = open(self.log_path, "w")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.name}) exited: {self.tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/healthz", headers={"Host": HOST})
                status = conn.getresponse().status
                conn.close()
                if status == 200 and len(self.worker_pids()) >= WORKERS:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn ({self.name}) did not answer in {timeout}s: {self.tail()}")

    def tail(self, lines=15):
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def worker_pids(self):
        if self.proc is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                pids.append(int(entry))
        return sorted(pids)

    def worker_memory(self):
        """{pid: {"VmHWM": kB, "VmRSS": kB}} of the workers."""
        out = {}
        for pid in self.worker_pids():
            values = {}
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        key, _, rest = line.partition(":")
                        if key in ("VmHWM", "VmRSS"):
                            values[key] = int(rest.split()[0])
            except OSError:
                continue
            out[pid] = values
        return out

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # our own gunicorn master, by pid
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


# --- A tiny browser for signing in -----------------------------------------------------------


class Browser:
    """Cookies, CSRF tokens and redirects over one keep-alive connection."""

    CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

    def __init__(self, port, remote_host=HOST):
        self.port = port
        self.cookies = {}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(self, method, path, form=None):
        headers = {"Host": HOST, "Cookie": self.cookie_header()}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
        if response.will_close:
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        return response.status, response.headers, content.decode("utf-8", "replace")

    def get(self, path, follow=True):
        status, headers, text = self.request("GET", path)
        hops = 0
        while follow and status in (301, 302) and hops < 5:
            path = headers["Location"]
            status, headers, text = self.request("GET", path)
            hops += 1
        return status, path, text

    def post_form(self, path, form):
        """GET the form for its CSRF token, POST it; returns (status, Location, text)."""
        _, _, page = self.get(path, follow=False)
        match = self.CSRF_INPUT.search(page)
        if match:
            form = {"csrfmiddlewaretoken": match.group(1), **form}
        status, headers, text = self.request("POST", path, form)
        return status, headers.get("Location"), text

    def close(self):
        self.conn.close()


# --- Load -----------------------------------------------------------------------------------


def load(
    port,
    paths,
    *,
    duration,
    connections=4,
    cookies=None,
    expect=200,
    min_bytes=0,
    method="GET",
    body=None,
):
    """Request `paths` (one per connection, cycled) back to back for `duration` seconds:
    GET, or `method` with `body` as a urlencoded form (a button's POST).

    Returns requests/s over the window, latency percentiles and error counts."""
    cookies = cookies or [None]
    stop_at = time.monotonic() + duration
    per_thread = [[] for _ in range(connections)]
    errors = [0] * connections
    first_error = []
    started = threading.Barrier(connections + 1)

    def worker(i):
        path = paths[i % len(paths)]
        cookie = cookies[i % len(cookies)]
        headers = {"Host": HOST}
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        started.wait()
        while True:
            t0 = time.monotonic()
            if t0 >= stop_at:
                break
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                content = response.read()
                ok = response.status == expect and len(content) >= min_bytes
                if not ok:
                    errors[i] += 1
                    if not first_error:
                        first_error.append(
                            f"{response.status} {len(content)} bytes {content[:200]!r}"
                        )
                else:
                    per_thread[i].append(time.monotonic() - t0)
                if response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=60)
            except (OSError, http.client.HTTPException) as exc:
                errors[i] += 1
                if not first_error:
                    first_error.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    started.wait()
    t_start = time.monotonic()
    for t in threads:
        t.join(timeout=duration + 120)
    elapsed = time.monotonic() - t_start
    latencies = sorted(x for lat in per_thread for x in lat)
    done = len(latencies)
    return {
        "requests": done,
        "seconds": round(elapsed, 3),
        "rps": done / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p95_ms": percentile(latencies, 95) * 1000 if latencies else None,
        "errors": sum(errors),
        "first_error": first_error[0] if first_error else None,
    }


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def median(values):
    return statistics.median(values) if values else None
