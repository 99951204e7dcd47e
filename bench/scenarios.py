"""The benchmark scenarios. Each returns `Result`s; each is bounded in time; each leaves
the data set as it found it (users it deactivates are reactivated, customers it builds
are removed).

Figures are always paired with a baseline measured in the same run where the target is a
ratio; absolute targets (p95 ms, seconds, MB) are reported as measured.
"""

import cProfile
import hashlib
import io
import os
import pstats
import random
import re
import statistics
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal

from bench import loadgen
from bench.data import BENCH_PASSWORD, DEACTIVATION_SLUG, PERSONAS_BIG

SMOKE_BUDGET = 1.0  # seconds of measurement per side/scenario in smoke mode
FULL_BUDGET = 8.0
# Throughput: rounds of (product, baseline) runs in ABBA order, seconds per run. Nine
# short rounds rather than five long ones: on the shared host one round in five could
# land far off (0.57 among four of 0.72-0.83), and the median of nine shrugs off two.
HTTP_ROUNDS = {"smoke": 1, "full": 9}
HTTP_SECONDS = {"smoke": 1.0, "full": 4.0}
ROW = re.compile(rb'<tr><td>[^<]*</td><td><a href="/customers/\d+/"')


@dataclass
class Result:
    name: str
    title: str
    unit: str
    product: float | None = None
    baseline: float | None = None
    baseline_unit: str = ""
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    error: str | None = None
    details: dict = field(default_factory=dict)
    seconds: float = 0.0
    # Issue 8's target where the team adopted another one (DEPARTURES says why).
    issue_target: str = ""

    def as_dict(self):
        return asdict(self)

    def compare(self, op, threshold, on="ratio", issue=None):
        """Set `passed` from the ratio (or the product figure) against the target.
        `issue`: issue 8's threshold where the adopted one differs (see DEPARTURES)."""
        value = self.ratio if on == "ratio" else self.product
        self.target = _target_text(op, threshold, on, self.unit)
        if issue is not None:
            self.issue_target = _target_text(op, issue, on, self.unit)
        if value is None:
            self.passed = None
        elif op == "<=":
            self.passed = value <= threshold
        elif op == ">=":
            self.passed = value >= threshold
        elif op == "==":
            self.passed = value == threshold
        return self


def _target_text(op, threshold, on, unit):
    return f"ratio {op} {threshold:g}" if on == "ratio" else f"{op} {threshold:g} {unit}"


# Where the benchmark's target differs from issue 8's, and why in a line (bench/README.md
# has the measurements). Each row still reports the issue's target in `issue_target`.
DEPARTURES = {
    "document_link_throughput": (
        "a reference, no target: a bare file counts no use, and the counted, logged "
        "write every download needs already costs more than 0.7 of the bare file leaves; "
        "the target applies to document_link_checks"
    ),
    "document_link_checks": (
        "the same 0.7, against a baseline without the link's checks but with what every "
        "download must do: the product's middleware and one committed statement that "
        "adds the use and its log row"
    ),
    "login_success": (
        "the sign-in's rules (lockout reservation, tenancy and inactivity, audit, "
        "allowlist) cost about a dozen statements; Django's own LoginView alone comes "
        "close to 1.3 (the reference in the notes), and a heavier hash that would shrink "
        "the ratio breaks the 150 MB worker limit: the rules may cost at most one hash more"
    ),
    "login_refused_account": (
        "0.05 of a verify is less than the refusal's floor, its read and its audit "
        "event; login_refused_hashes proves no hash, and 0.5 could not hold one"
    ),
    "login_refused_ip": "as login_refused_account",
}


class Ctx:
    def __init__(self, scale, workdir, log):
        from accounts.models import Entity

        self.scale = scale
        self.smoke = scale.name == "smoke"
        self.budget = SMOKE_BUDGET if self.smoke else FULL_BUDGET
        self.workdir = workdir
        self.log = log
        self.big = Entity.objects.get(slug="bench-e000")
        self.small = Entity.objects.get(slug="bench-small")
        self.deactivation = Entity.objects.get(slug=DEACTIVATION_SLUG)

    def persona(self, entity, label):
        from accounts.models import User

        return User.objects.get(email=f"{label}@{entity.slug}.bench.example")


# --- Shared helpers ---------------------------------------------------------------------------


def refresh_personas(ctx):
    """Personas in a known good state: active, fresh password, just active, no blocks."""
    from django.utils import timezone

    from accounts.models import User, UserSession
    from accounts.tenancy import system_code
    from security.models import LoginThrottle

    now = timezone.now()
    with system_code():
        personas = User.objects.filter(email__startswith="bench-", email__endswith=".bench.example")
        personas.update(
            is_active=True,
            deactivated_at=None,
            password_changed_at=now - timedelta(days=10),
            password_reminder_sent_at=None,
            last_active_at=now,
        )
        emails = list(personas.values_list("email", flat=True))
        LoginThrottle.objects.filter(key__in=emails + ["127.0.0.1"]).delete()
        LoginThrottle.objects.filter(key__startswith="198.51.100.").delete()
        UserSession.objects.filter(user_id__in=personas.values("pk")).delete()


def client_for(user, entity, ip="127.0.0.1", otp_device=None):
    """An in-process test Client signed in as `user`, working in `entity`."""
    from django.test import Client

    from accounts.tenancy import SESSION_ENTITY_KEY

    client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR=ip)
    client.force_login(user)
    session = client.session
    session[SESSION_ENTITY_KEY] = entity.pk
    if otp_device is not None:
        session["otp_device_id"] = otp_device.persistent_id
    session.save()
    return client


def timed_requests(client, urls, *, budget, max_requests, min_requests=5, expect=200):
    """Wall time of in-process requests (cycling `urls`) within a time budget."""
    samples = []
    deadline = time.monotonic() + budget
    i = 0
    while i < max_requests and (time.monotonic() < deadline or i < min_requests):
        url = urls[i % len(urls)]
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - t0)
        if response.status_code != expect:
            raise RuntimeError(f"GET {url} answered {response.status_code}, expected {expect}")
        i += 1
    return samples


def pct_ms(samples, p):
    return round(loadgen.percentile(sorted(samples), p) * 1000, 2)


def count_queries(client, url, repeats=3):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts, captured = [], None
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        counts.append(len(ctx.captured_queries))
        captured = ctx.captured_queries
    return int(statistics.median(counts)), counts, captured, response


def explain_slowest(captured, top=2):
    """EXPLAIN ANALYZE the slowest SELECTs of one captured request (for the report)."""
    from django.db import connection

    def select_of(sql):
        # Plain SELECTs, and the SELECT of a server-side cursor (QuerySet.iterator()).
        head = sql.lstrip()[:200].upper()
        if head.startswith("SELECT"):
            return sql
        if head.startswith("DECLARE") and " FOR SELECT" in head:
            return sql[sql.upper().index(" FOR SELECT") + 5 :]
        return None

    selects = [q for q in captured if select_of(q["sql"])]
    selects.sort(key=lambda q: float(q["time"]), reverse=True)
    plans = []
    for q in selects[:top]:
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + select_of(q["sql"]))
            plan = "\n".join(row[0] for row in cur.fetchall())
        plans.append(
            {"ms": round(float(q["time"]) * 1000, 2), "sql": q["sql"][:2000], "plan": plan}
        )
    return plans


def profile_top(fn, lines=25):
    """cProfile of `fn()`: the top functions by cumulative time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    text = out.getvalue()
    return text[text.find("ncalls") :] if "ncalls" in text else text


# --- HTTP scenarios under gunicorn ------------------------------------------------------------


def make_pdf(size):
    """A valid one-page PDF of about `size` bytes (an unreferenced filler stream)."""
    filler = random.Random(7).randbytes(max(0, size - 700))
    content = b"BT /F1 24 Tf 72 720 Td (Benchmark invoice) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def setup_document_link(ctx):
    from django.conf import settings

    from accounts.tenancy import tenant_scope
    from bench.baseline_urls import BENCH_PDF_NAME
    from customers import links
    from customers.models import Customer, CustomerLink
    from documents.models import Document

    data = make_pdf(200 * 1024)
    path = settings.MEDIA_ROOT / BENCH_PDF_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    with tenant_scope(ctx.big):
        customer = Customer.objects.order_by("pk").first()
        document = Document.objects.create(
            entity=ctx.big,
            customer=customer,
            kind=Document.Kind.INVOICE,
            file=BENCH_PDF_NAME,
            original_name="Invoice 2026-001.pdf",
            content_type="application/pdf",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        link, token = links.create_link(
            customer=customer, kind=CustomerLink.Kind.DOCUMENT, document=document
        )
        # A second link whose use counter the counted baseline updates (/bench/counted-file/).
        counted, _ = links.create_link(
            customer=customer, kind=CustomerLink.Kind.DOCUMENT, document=document
        )
    document.bench_link_id = link.pk
    document.bench_counted_link_id = counted.pk
    return document, token, len(data)


def cleanup_document(document, link_id=None):
    """Remove the scenario's document, its link and the link's use log (explicitly: the
    link's foreign key to the document does not cascade)."""
    from accounts.tenancy import system_code
    from customers.models import CustomerLink, LinkUse
    from documents.models import Document

    with system_code():
        links = CustomerLink.objects.filter(document=document)
        if link_id is not None:
            links = CustomerLink.objects.filter(pk=link_id) | links
        ids = list(links.values_list("pk", flat=True))
        LinkUse.objects.filter(link_id__in=ids).delete()
        CustomerLink.objects.filter(pk__in=ids).delete()
        Document.objects.filter(pk=document.pk).delete()


def setup_web_personas(ctx):
    """The four web personas (restricted collectors of the big tenant) each get a fresh
    confirmed authenticator; returns [(user, raw key)]."""
    from security.models import EncryptedTOTPDevice

    out = []
    for label, _ in PERSONAS_BIG:
        if not label.startswith("bench-web"):
            continue
        user = ctx.persona(ctx.big, label)
        EncryptedTOTPDevice.objects.filter(user=user).delete()
        key = os.urandom(20)
        device = EncryptedTOTPDevice.objects.create(
            user=user, name="Authenticator app", confirmed=True, bin_key=key
        )
        out.append((user, key, device))
    return out


def totp_now(key):
    from django_otp.oath import TOTP

    return f"{TOTP(key, step=30, t0=0, digits=6, drift=0).token():06d}"


def http_sign_in(port, email, key):
    """The real sign-in through gunicorn: password, then the authenticator code."""
    browser = loadgen.Browser(port)
    status, location, text = browser.post_form(
        "/accounts/login/", {"username": email, "password": BENCH_PASSWORD}
    )
    if status != 302:
        raise RuntimeError(f"sign-in of {email} answered {status}: {text[:300]}")
    status, path, _ = browser.get("/", follow=True)
    if "2fa/verify" not in path:
        raise RuntimeError(f"expected the 2FA step after the password, got {status} {path}")
    status, location, text = browser.post_form("/account/2fa/verify/", {"code": totp_now(key)})
    if status != 302:
        raise RuntimeError(f"2FA step of {email} answered {status}: {text[:300]}")
    status, path, text = browser.get("/", follow=True)
    if status != 200 or path != "/" or 'class="figure"' not in text:
        raise RuntimeError(f"dashboard after sign-in answered {status} at {path}")
    browser.close()
    return browser.cookie_header()


def paired(product_runs, baseline_runs):
    """Figures of a throughput comparison: median req/s of each side, and the median of
    the per-round ratios (each round's runs are adjacent, so they saw the same machine)."""
    ratios = [p["rps"] / b["rps"] for p, b in zip(product_runs, baseline_runs, strict=True)]
    return (
        round(statistics.median(r["rps"] for r in product_runs), 1),
        round(statistics.median(r["rps"] for r in baseline_runs), 1),
        round(statistics.median(ratios), 3),
        [round(r, 3) for r in ratios],
    )


def alternate(*measures, rounds):
    """Each round runs every measure once, in ABBA order (A B, B A, A B ...; with three,
    A B C, C B A ...) so slow drift of a noisy machine hits every side alike. Returns one
    list of runs per measure."""
    runs = [[] for _ in measures]
    for i in range(rounds):
        order = range(len(measures)) if i % 2 == 0 else reversed(range(len(measures)))
        for k in order:
            runs[k].append(measures[k]())
    return runs


def http_scenarios(ctx):
    from django.conf import settings

    results = []
    product = loadgen.Server("product", "config.settings", ctx.workdir)
    baseline = loadgen.Server("baseline", "bench.baseline_settings", ctx.workdir)
    # The product's settings and middleware with the bench routes: the link's checks are
    # the only difference between its counted download and the product's link.
    stack = loadgen.Server("stack", "bench.product_stack_settings", ctx.workdir)
    document = None
    page = Result("auth_page_throughput", "Authenticated page, whole security stack", "req/s")
    link = Result("document_link_throughput", "Document link, 200 KB PDF", "req/s")
    checks = Result(
        "document_link_checks",
        "Document link vs the same stack's download with no link checks",
        "req/s",
    )
    memory = Result("worker_peak_rss", "Peak RSS of a gunicorn web worker", "MB")
    rounds = HTTP_ROUNDS[ctx.scale.name]
    seconds = HTTP_SECONDS[ctx.scale.name]
    connections = 4
    try:
        t0 = time.monotonic()
        product.start()
        baseline.start()
        ctx.log(f"  gunicorn product :{product.port}, baseline :{baseline.port}")
        personas = setup_web_personas(ctx)
        cookies = [http_sign_in(product.port, u.email, key) for u, key, _ in personas]
        # Same session on the baseline server: same page, no security middleware.
        status, _, text = _get_with_cookie(baseline.port, "/", cookies[0])
        if status != 200 or 'class="figure"' not in text:
            raise RuntimeError(f"baseline dashboard answered {status}")
        warm = min(1.0, ctx.budget / 4)
        loadgen.load(product.port, ["/"], duration=warm, connections=connections, cookies=cookies)
        loadgen.load(baseline.port, ["/"], duration=warm, connections=connections, cookies=cookies)

        def run(port):
            def measure():
                r = loadgen.load(
                    port, ["/"], duration=seconds, connections=connections, cookies=cookies
                )
                if r["errors"]:
                    raise RuntimeError(f"{r['errors']} failed requests: {r['first_error']}")
                return r

            return measure

        p_runs, b_runs = alternate(run(product.port), run(baseline.port), rounds=rounds)
        page.product, page.baseline, page.ratio, round_ratios = paired(p_runs, b_runs)
        page.compare(">=", 0.8)
        page.details = {
            "ratio": "median of the per-round ratios",
            "round_ratios": round_ratios,
            "url": "/ (dashboard) as a restricted collector of the largest tenant",
            "product_runs": p_runs,
            "baseline_runs": b_runs,
            "connections": connections,
            "gunicorn": f"{loadgen.WORKERS} gthread workers x {loadgen.THREADS} thread",
            "per_request": in_process_page_costs(ctx, personas[0]),
        }
        page.seconds = round(time.monotonic() - t0, 1)
    except Exception as exc:  # noqa: BLE001 -- reported in the table, the run goes on
        page.error = _error(exc)
    results.append(page)

    try:
        t0 = time.monotonic()
        if product.proc is None or product.proc.poll() is not None:
            raise RuntimeError("the product server is not running")
        stack.start()
        document, token, size = setup_document_link(ctx)
        # What a customer does: the emailed URL opens the link's page (a GET that spends
        # nothing and exchanges the token for a link-bound session); the page's Download
        # button posts. The load is that POST, with the session's cookie and form key.
        p_path, p_send = open_document_link(product.port, f"/l/{token}/")
        b_path = "/bench/file/"
        c_path = f"/bench/counted-file/{document.bench_counted_link_id}/"
        for port, path, send in (
            (product.port, p_path, p_send),
            (baseline.port, b_path, {}),
            (stack.port, c_path, {}),
        ):
            status, headers, body = _raw_request(port, path, **send)
            if status != 200 or len(body) != size or not body.startswith(b"%PDF"):
                raise RuntimeError(f"{path} answered {status} with {len(body)} bytes")
        p_load = {"method": "POST", "body": p_send["body"], "cookies": [p_send["cookie"]]}
        warm = min(1.0, ctx.budget / 4)
        loadgen.load(product.port, [p_path], duration=warm, connections=connections, **p_load)
        loadgen.load(baseline.port, [b_path], duration=warm, connections=connections)
        loadgen.load(stack.port, [c_path], duration=warm, connections=connections)

        def run_link(port, path, **send):
            def measure():
                r = loadgen.load(
                    port,
                    [path],
                    duration=seconds,
                    connections=connections,
                    min_bytes=size,
                    **send,
                )
                if r["errors"]:
                    raise RuntimeError(f"{r['errors']} failed requests: {r['first_error']}")
                return r

            return measure

        # The product in the middle: each round runs it next to both of its baselines.
        b_runs, p_runs, c_runs = alternate(
            run_link(baseline.port, b_path),
            run_link(product.port, p_path, **p_load),
            run_link(stack.port, c_path),
            rounds=rounds,
        )
        link.product, link.baseline, link.ratio, round_ratios = paired(p_runs, b_runs)
        # A reference (DEPARTURES): no pass or fail of its own.
        link.target, link.issue_target = "reference", _target_text(">=", 0.7, "ratio", "")
        checks.product, checks.baseline, checks.ratio, checks_ratios = paired(p_runs, c_runs)
        checks.compare(">=", 0.7, issue=0.7)
        checks.details = {
            "ratio": "median of the per-round ratios",
            "round_ratios": checks_ratios,
            "baseline": "the same FileResponse after one committed statement adding a use "
            "to a link row and its access-log row (bench.baseline_urls.counted_file), "
            "served with the product's settings and middleware "
            "(bench.product_stack_settings)",
            "baseline_runs": c_runs,
        }
        link.details = {
            "ratio": "median of the per-round ratios",
            "round_ratios": round_ratios,
            "per_request": in_process_link_costs(ctx, f"/l/{token}/", b_path, size),
            "request": "POST of the document link page's Download button (session cookie "
            "and form key), after one GET of the emailed URL",
            "file_bytes": size,
            "product_runs": p_runs,
            "baseline_runs": b_runs,
            "baseline": "FileResponse of the same file, bare Django (bench.baseline_settings)",
            "media_root": str(settings.MEDIA_ROOT),
        }
        link.seconds = round(time.monotonic() - t0, 1)
    except Exception as exc:  # noqa: BLE001
        link.error = _error(exc)
    finally:
        stack.stop()
        if document is not None:
            cleanup_document(document, getattr(document, "bench_link_id", None))
    results.append(link)
    if link.error:
        checks.error = link.error
    results.append(checks)

    try:
        workers = product.worker_memory()
        if not workers:
            raise RuntimeError("no gunicorn worker found")
        peak = max(v.get("VmHWM", 0) for v in workers.values())
        memory.product = round(peak / 1024, 1)
        memory.compare("<=", 150, on="product")
        memory.details = {
            "product_workers_kB": workers,
            "baseline_workers_kB": baseline.worker_memory(),
            "note": "VmHWM after the sign-ins, the page load and the document-link load",
        }
    except Exception as exc:  # noqa: BLE001
        memory.error = _error(exc)
    finally:
        product.stop()
        baseline.stop()
    results.append(memory)
    return results


def open_document_link(port, path):
    """A customer opening an emailed document link: the GET of its URL, redirected to the
    link's page. Returns the page's path and how its Download button posts."""
    from urllib.parse import urlencode

    browser = loadgen.Browser(port)
    status, page_path, text = browser.get(path, follow=True)
    browser.close()
    key = re.search(r'name="key" value="([0-9a-f]+)"', text)
    if status != 200 or not page_path.startswith("/l/open/") or key is None:
        raise RuntimeError(f"GET {path} led to {status} at {page_path}: {text[:300]}")
    body = urlencode({"key": key.group(1)})
    return page_path, {"method": "POST", "body": body, "cookie": browser.cookie_header()}


def _raw_get(port, path, cookie=None):
    return _raw_request(port, path, cookie=cookie)


def _raw_request(port, path, method="GET", cookie=None, body=None):
    import http.client

    conn = http.client.HTTPConnection(loadgen.HOST, port, timeout=60)
    headers = {"Host": loadgen.HOST}
    if cookie:
        headers["Cookie"] = cookie
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body


def _get_with_cookie(port, path, cookie):
    status, headers, body = _raw_get(port, path, cookie)
    return status, headers, body.decode("utf-8", "replace")


def in_process_link_costs(ctx, link_path, file_path, size):
    """Queries and in-process time per download: the link (its page opened once, then its
    Download button's POST, as a customer does) vs the plain FileResponse."""
    from django.test import Client, override_settings

    from bench import baseline_settings

    out = {}
    for name, path, overrides in (
        ("product", link_path, {}),
        (
            "baseline",
            file_path,
            {
                "MIDDLEWARE": baseline_settings.MIDDLEWARE,
                "ROOT_URLCONF": baseline_settings.ROOT_URLCONF,
            },
        ),
    ):
        with override_settings(**overrides):
            client = Client(HTTP_HOST="127.0.0.1")
            send = {}
            if name == "product":  # the page opened once; each download is its button's POST
                path = client.get(path)["Location"]
                page = client.get(path).content.decode()
                key = re.search(r'name="key" value="([0-9a-f]+)"', page)
                if key is None:
                    raise RuntimeError(f"no Download button at {path}: {page[:300]}")
                send = {"data": {"key": key.group(1)}}

            def fetch(client=client, path=path, send=send):
                response = client.post(path, **send) if send else client.get(path)
                body = b"".join(response.streaming_content)
                response.close()
                if response.status_code != 200 or len(body) != size:
                    raise RuntimeError(f"{path} answered {response.status_code}")

            for _ in range(3):
                fetch()
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as q:
                fetch()
            captured = list(q.captured_queries)  # the next request resets the log
            samples = []
            deadline = time.monotonic() + min(ctx.budget, 2)
            while time.monotonic() < deadline and len(samples) < 300:
                samples.append(_time(fetch))
            out[name] = {
                "queries": len(captured),
                "sql": [x["sql"][:160] for x in captured],
                "p50_ms": pct_ms(samples, 50),
            }
    return out


def in_process_page_costs(ctx, persona):
    """Queries and in-process time per dashboard request, product vs baseline stack."""
    from django.test import override_settings

    from bench import baseline_settings

    user, _, device = persona
    out = {}
    for name, overrides in (
        ("product", {}),
        (
            "baseline",
            {
                "MIDDLEWARE": baseline_settings.MIDDLEWARE,
                "ROOT_URLCONF": baseline_settings.ROOT_URLCONF,
            },
        ),
    ):
        with override_settings(**overrides):
            client = client_for(user, ctx.big, otp_device=device)
            for _ in range(3):
                client.get("/")
            queries, _, captured, _ = count_queries(client, "/")
            samples = timed_requests(client, ["/"], budget=min(ctx.budget, 2), max_requests=200)
            out[name] = {
                "queries": queries,
                "sql": [q["sql"][:160] for q in captured],
                "p50_ms": pct_ms(samples, 50),
            }
    return out


# --- Customer list and search (in-process, test Client) ---------------------------------------


def customer_list(ctx, label, role_title):
    refresh_personas(ctx)
    url = "/customers/"
    counts = {}
    rows = {}
    clients = {}
    for entity in (ctx.small, ctx.big):
        client = client_for(ctx.persona(entity, label), entity)
        for _ in range(3):
            client.get(url)
        counts[entity.slug], _, captured, response = count_queries(client, url)
        rows[entity.slug] = len(ROW.findall(response.content))
        clients[entity.slug] = (client, captured)
    client, captured = clients[ctx.big.slug]
    samples = timed_requests(
        client, [url], budget=ctx.budget * (1 if ctx.smoke else 2.5), max_requests=400
    )
    timing = Result(
        f"customer_list_{label.replace('bench-', '')}",
        f"Customer list, 50 rows, {role_title}",
        "ms p95",
        product=pct_ms(samples, 95),
    ).compare("<=", 30, on="product")
    timing.details = {
        "entity": ctx.big.slug,
        "requests": len(samples),
        "p50_ms": pct_ms(samples, 50),
        "max_ms": round(max(samples) * 1000, 2),
        "rows_on_page": rows[ctx.big.slug],
        "queries": counts[ctx.big.slug],
        "visible_customers": _visible_count(ctx, label),
        "query_ms": [round(float(q["time"]) * 1000, 2) for q in captured],
    }
    if timing.passed is False:
        timing.details["slowest_queries"] = explain_slowest(captured)
        timing.details["profile"] = profile_top(lambda: client.get(url))
    queries = Result(
        f"customer_list_queries_{label.replace('bench-', '')}",
        f"Customer list query count, {role_title}: full vs small scale",
        "queries",
        product=counts[ctx.big.slug],
        baseline=counts[ctx.small.slug],
        ratio=round(counts[ctx.big.slug] / counts[ctx.small.slug], 3),
    ).compare("==", 1)
    queries.target = "equal (ratio == 1)"
    queries.details = {
        "full_scale_entity": ctx.big.slug,
        "small_scale_entity": ctx.small.slug,
        "counts": counts,
        "rows": rows,
    }
    return [timing, queries]


def _visible_count(ctx, label):
    from accounts.tenancy import tenant_scope
    from customers.models import Customer

    user = ctx.persona(ctx.big, label)
    with tenant_scope(ctx.big):
        if label == "bench-collector":
            return Customer.objects.filter(collector=user).count()
        return Customer.objects.count()


SEARCH_TERMS = [
    "Berg", "Fjell", "Sol", "Nordvik", "Kobber", "Vind", "Eikheim", "Strand", "Tindrud",
    "Mo", "Skogl", "Gullbakken",
]  # fmt: skip


def customer_search(ctx, label, role_title):
    from urllib.parse import urlencode

    refresh_personas(ctx)
    client = client_for(ctx.persona(ctx.big, label), ctx.big)
    urls = [f"/customers/?{urlencode({'q': term})}" for term in SEARCH_TERMS]
    for url in urls[:3]:
        client.get(url)
    samples = timed_requests(
        client, urls, budget=ctx.budget * (1 if ctx.smoke else 2.5), max_requests=400
    )
    per_term = {}
    for term, url in zip(SEARCH_TERMS, urls, strict=True):
        t0 = time.perf_counter()
        response = client.get(url)
        per_term[term] = {
            "ms": round((time.perf_counter() - t0) * 1000, 1),
            "rows": len(ROW.findall(response.content)),
        }
    result = Result(
        f"customer_search_{label.replace('bench-', '')}",
        f"Customer search by name prefix, {role_title}",
        "ms p95",
        product=pct_ms(samples, 95),
    ).compare("<=", 50, on="product")
    slowest = max(per_term, key=lambda t: per_term[t]["ms"])
    queries, _, captured, _ = count_queries(client, urls[SEARCH_TERMS.index(slowest)], repeats=1)
    result.details = {
        "slowest_term": slowest,
        "entity": ctx.big.slug,
        "requests": len(samples),
        "p50_ms": pct_ms(samples, 50),
        "per_term": per_term,
        "queries": queries,
        "query_ms": [round(float(q["time"]) * 1000, 2) for q in captured],
    }
    if result.passed is False:
        result.details["slowest_queries"] = explain_slowest(captured)
    return [result]


# --- Sign-in ----------------------------------------------------------------------------------


def _hasher_and_hash(user):
    from django.contrib.auth.hashers import get_hasher, identify_hasher

    hasher = get_hasher("default")  # the real settings' first hasher (Argon2)
    if identify_hasher(user.password).algorithm != hasher.algorithm:
        raise RuntimeError("the persona's hash is not made by the default hasher")
    return hasher, user.password


def post_urlencoded(client, path, **fields):
    """POST as a browser submits the sign-in form (urlencoded; the test client's default
    is multipart, which costs the server a multipart parse no browser asks for)."""
    from urllib.parse import urlencode

    return client.post(path, urlencode(fields), content_type="application/x-www-form-urlencoded")


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@contextmanager
def django_login_only():
    """Django's sign-in as shipped: its session and authentication middleware, ModelBackend,
    and no user_logged_in receiver but Django's own (last_login). The product's audit
    receiver and django-axes' are disconnected for the duration and connected again."""
    from axes.signals import handle_user_logged_in
    from django.contrib.auth.signals import user_logged_in
    from django.test import override_settings

    from security.receivers import audit_login

    user_logged_in.disconnect(audit_login, dispatch_uid="audit_login")
    user_logged_in.disconnect(handle_user_logged_in)
    try:
        with override_settings(
            MIDDLEWARE=[
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
            ],
            AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"],
            ROOT_URLCONF="bench.baseline_urls",
        ):
            yield
    finally:
        user_logged_in.connect(audit_login, dispatch_uid="audit_login")
        user_logged_in.connect(handle_user_logged_in)


def sign_in(path, username):
    """One in-process sign-in by a new visitor; raises unless it signed in."""
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
    response = post_urlencoded(client, path, username=username, password=BENCH_PASSWORD)
    if response.status_code != 302 or "sessionid" not in client.cookies:
        raise RuntimeError(f"sign-in at {path} answered {response.status_code}")


def login_success(ctx):
    refresh_personas(ctx)
    user = ctx.persona(ctx.big, "bench-credit")
    hasher, encoded = _hasher_and_hash(user)
    n = 3 if ctx.smoke else 15

    def login():
        sign_in("/accounts/login/", user.email.upper())

    def django_login():
        """Seconds of one sign-in through Django's LoginView. Switching the settings empties
        Django's URL caches, so a first sign-in warms them and the second is timed.
        Django's form takes the address exactly as stored."""
        with django_login_only():
            sign_in("/bench/django-login/", user.email)
            return _time(lambda: sign_in("/bench/django-login/", user.email))

    def verify():
        if not hasher.verify(BENCH_PASSWORD, encoded):
            raise RuntimeError("raw verify failed")

    login()  # warm up (templates, first queries)
    django_login()
    verify()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        login()
    statements = [q["sql"][:120] for q in captured.captured_queries]
    logins, verifies, django_logins = [], [], []
    for _ in range(n):
        logins.append(_time(login))
        verifies.append(_time(verify))
        django_logins.append(django_login())
        login()  # untimed: switching the settings back emptied the URL caches again
    result = Result(
        "login_success",
        "Successful sign-in vs one raw Argon2 verify",
        "ms",
        product=round(statistics.median(logins) * 1000, 1),
        baseline=round(statistics.median(verifies) * 1000, 1),
    )
    result.ratio = round(result.product / result.baseline, 3)
    result.compare("<=", 2, issue=1.3)
    # A reference, not a target: the same sign-in through Django's LoginView with nothing
    # of the product's (no lockout counters, tenancy, inactivity rule, audit event or
    # allowlist), measured in the same rounds.
    django_ms = round(statistics.median(django_logins) * 1000, 1)
    django_ratio = round(django_ms / result.baseline, 3)
    result.note = (
        f"reference: Django's own LoginView with ModelBackend and nothing of the product's "
        f"takes {django_ms} ms, ratio {django_ratio} to the same verify"
    )
    result.details = {
        "samples": n,
        "login_ms": [round(x * 1000, 1) for x in logins],
        "verify_ms": [round(x * 1000, 1) for x in verifies],
        "django_login_view_ms": [round(x * 1000, 1) for x in django_logins],
        "django_login_view_ratio": django_ratio,
        # What a sign-in costs besides its one verify, and the statements it runs.
        "overhead_ms": round(result.product - result.baseline, 1),
        "statements": statements,
        "hasher": f"{hasher.algorithm} t={hasher.time_cost} m={hasher.memory_cost} "
        f"p={hasher.parallelism}",
    }
    refresh_personas(ctx)
    return [result]


def login_refused(ctx):
    import logging

    from django.test import Client
    from django.utils import timezone

    from security.models import LoginThrottle

    # Each refusal is a 429, which django.request logs as a warning: not news here.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    refresh_personas(ctx)
    blocked_user = ctx.persona(ctx.big, "bench-admin")
    other_user = ctx.persona(ctx.big, "bench-credit")
    hasher, encoded = _hasher_and_hash(other_user)
    now = timezone.now()
    account_ip, blocked_ip = "198.51.100.201", "198.51.100.202"
    LoginThrottle.objects.update_or_create(
        kind="account", key=blocked_user.email, defaults={"failures": 5, "last_failure_at": now}
    )
    LoginThrottle.objects.update_or_create(
        kind="ip", key=blocked_ip, defaults={"failures": 10, "last_failure_at": now}
    )
    n = 5 if ctx.smoke else 40
    results = []
    # Count the hashes computed by the refused attempts (the raw verifies of the baseline
    # are taken out): the product's promise is that a blocked attempt computes none.
    hasher_class = type(hasher)
    original_verify = hasher_class.verify
    counted = {"product": 0, "attempts": 0, "counting": False}

    def counting_verify(self, password, encoded):
        if counted["counting"]:
            counted["product"] += 1
        return original_verify(self, password, encoded)

    hasher_class.verify = counting_verify
    try:
        verifies = [_time(lambda: hasher.verify(BENCH_PASSWORD, encoded)) for _ in range(2)]
        for name, title, email, ip in (
            ("login_refused_account", "Refused sign-in, blocked account", blocked_user.email,
             account_ip),
            ("login_refused_ip", "Refused sign-in, blocked IP address (right password)",
             other_user.email, blocked_ip),
        ):  # fmt: skip

            def attempt(email=email, ip=ip):
                client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR=ip)
                counted["counting"] = True
                try:
                    response = post_urlencoded(
                        client, "/accounts/login/", username=email, password=BENCH_PASSWORD
                    )
                finally:
                    counted["counting"] = False
                counted["attempts"] += 1
                if response.status_code != 429:
                    raise RuntimeError(f"expected a 429 refusal, got {response.status_code}")

            attempt()
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as q:
                attempt()
            statements = [x["sql"][:120] for x in q.captured_queries]  # before the next request
            samples = []
            for i in range(n):
                samples.append(_time(attempt))
                if i % 5 == 0:
                    verifies.append(_time(lambda: hasher.verify(BENCH_PASSWORD, encoded)))
            result = Result(
                name,
                title + " vs one raw Argon2 verify",
                "ms",
                product=round(statistics.median(samples) * 1000, 2),
                baseline=round(statistics.median(verifies) * 1000, 1),
            )
            result.ratio = round(result.product / result.baseline, 4)
            result.compare("<=", 0.5, issue=0.05)
            result.details = {
                "samples": n,
                "p95_ms": pct_ms(samples, 95),
                "verify_samples": len(verifies),
                "statements": statements,
                "floor_ms": refusal_floor_ms(n),
                "floor": "the same POST answered 429 by a view doing nothing, behind the "
                "product's whole middleware stack (bench.baseline_urls)",
            }
            results.append(result)
        # The block must not have moved: refused attempts are not counted.
        still = LoginThrottle.objects.get(kind="account", key=blocked_user.email)
        if still.failures != 5:
            results[0].note = f"account counter moved to {still.failures}"
        hashes = Result(
            "login_refused_hashes",
            "Password hashes computed by the refused sign-ins above",
            "hashes",
            product=counted["product"],
        )
        hashes.compare("==", 0, on="product")
        hashes.details = {"refused_attempts": counted["attempts"]}
        results.append(hashes)
    finally:
        hasher_class.verify = original_verify
        LoginThrottle.objects.filter(key__in=[blocked_user.email, blocked_ip, account_ip]).delete()
        LoginThrottle.objects.filter(key=other_user.email).delete()
    return results


def refusal_floor_ms(n):
    """Median ms of a sign-in POST that the product's middleware passes to a view that
    answers 429 at once: what any refusal costs before the product does anything."""
    from django.test import Client, override_settings

    with override_settings(ROOT_URLCONF="bench.baseline_urls"):
        client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="198.51.100.203")

        def attempt():
            response = post_urlencoded(
                client, "/bench/refuse/", username="nobody@bench.example", password="x"
            )
            if response.status_code != 429:
                raise RuntimeError(f"the floor view answered {response.status_code}")

        attempt()
        return round(statistics.median(_time(attempt) for _ in range(n)) * 1000, 2)


# --- Deactivation job -------------------------------------------------------------------------


def deactivation(ctx):
    from django.utils import timezone

    from bench.data import add_idle_users, remove_idle_users

    entity = ctx.deactivation
    t_setup = time.monotonic()
    add_idle_users(ctx.scale, entity.pk, timezone.now(), log=ctx.log)
    setup_s = time.monotonic() - t_setup
    try:
        return _deactivation(ctx, entity, setup_s)
    finally:
        t_teardown = time.monotonic()
        remove_idle_users(entity.pk)
        ctx.log(f"  idle users removed in {time.monotonic() - t_teardown:.1f}s")


def _deactivation(ctx, entity, setup_s):
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Membership, User
    from accounts.tenancy import system_code
    from security.inactivity import deactivate_inactive_users, inactivity_cutoff
    from security.models import SecurityPolicy

    with system_code():
        total = Membership.objects.filter(entity=entity).count()
        policy = SecurityPolicy.objects.get(entity=entity)
        now0 = timezone.now()
        expected = User.objects.filter(
            memberships__entity=entity,
            is_active=True,
            last_active_at__lt=inactivity_cutoff(policy.inactivity_limit_months, now0),
        ).count()

    def restore(stamp):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "UPDATE accounts_user SET is_active = true, deactivated_at = NULL "
                "WHERE deactivated_at = %s",
                [stamp],
            )
            restored = cur.rowcount
            # The audit log's trigger refuses a DELETE unless the transaction says so.
            cur.execute("SELECT set_config('guardrail.audit_retention', 'on', true)")
            cur.execute(
                "DELETE FROM security_auditevent WHERE action = 'user.deactivated' "
                "AND created_at = %s",
                [stamp],
            )
        return restored

    def run_job():
        stamp = timezone.now()
        t = _time(lambda: counts.append(deactivate_inactive_users(now=stamp)))
        return t, stamp

    def run_raw(bare=False):
        stamp = timezone.now()
        t0 = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            n = 0
            for p in SecurityPolicy.objects.filter(inactivity_limit_months__isnull=False):
                n += _raw_deactivate(cur, p, stamp, inactivity_cutoff(p.inactivity_limit_months,
                                                                        stamp), bare)  # fmt: skip
        if not bare:
            raw_counts.append(n)
        return time.perf_counter() - t0, stamp

    counts, raw_counts = [], []
    job_times, raw_times, bare_times = [], [], []
    repeats = 3 if ctx.smoke else 1
    with system_code():
        for _ in range(repeats):
            for runner, bucket in (
                (run_raw, raw_times),
                (run_job, job_times),
                (lambda: run_raw(bare=True), bare_times),
            ):
                stamp = None
                try:
                    t, stamp = runner()
                    bucket.append(t)
                finally:
                    if stamp is not None:
                        restore(stamp)
    result = Result(
        "deactivation_job",
        f"Deactivation job, {total:,} users with {expected:,} over the limit",
        "s",
        product=round(statistics.median(job_times), 3),
        baseline=round(statistics.median(raw_times), 3),
    )
    result.ratio = round(result.product / result.baseline, 3)
    result.compare("<=", 2)
    result.details = {
        "users_in_entity": total,
        "expected_deactivations": expected,
        "job_deactivated": counts,
        "raw_deactivated": raw_counts,
        "job_s": [round(x, 3) for x in job_times],
        "raw_equivalent_s": [round(x, 3) for x in raw_times],
        "bare_update_only_s": [round(x, 3) for x in bare_times],
        "ratio_vs_bare_update": round(
            statistics.median(job_times) / statistics.median(bare_times), 3
        ),
        "baseline": "one set-based statement per policy: UPDATE users + DELETE their "
        "sessions + INSERT one audit row each (what the job does), no batching",
        "scale_note": "the users are COPYed into a separate entity (bench-deactivation) "
        "for this scenario only and deleted afterwards; state is restored after every run",
        "setup_s": round(setup_s, 1),
        "customer_list_with_these_users": _list_with_idle_users(ctx),
    }
    if any(c != expected for c in counts):
        result.note = f"the job deactivated {counts}, expected {expected}"
    return [result]


def _list_with_idle_users(ctx):
    """The credit manager's customer list while the platform has these extra users: the
    collector choices of the search form are read with a scan of every user."""
    client = client_for(ctx.persona(ctx.big, "bench-credit"), ctx.big)
    for _ in range(2):
        client.get("/customers/")
    samples = timed_requests(client, ["/customers/"], budget=min(ctx.budget, 3), max_requests=20)
    from django.db import connection

    total = None
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM accounts_user")
        total = cur.fetchone()[0]
    return {"users_in_platform": total, "p50_ms": pct_ms(samples, 50), "requests": len(samples)}


def _raw_deactivate(cur, policy, stamp, cutoff, bare):
    if policy.entity_id:
        scope = "SELECT user_id FROM accounts_membership WHERE entity_id = %(entity)s"
        group = policy.entity.group_id
        if group:
            scope += (
                " UNION SELECT user_id FROM accounts_groupmembership WHERE group_id = %(group)s"
            )
    else:
        group = policy.group_id
        scope = (
            "SELECT m.user_id FROM accounts_membership m JOIN accounts_entity e "
            "ON e.id = m.entity_id WHERE e.group_id = %(group)s UNION "
            "SELECT user_id FROM accounts_groupmembership WHERE group_id = %(group)s"
        )
    params = {
        "entity": policy.entity_id,
        "group": group,
        "stamp": stamp,
        "cutoff": cutoff,
        "months": policy.inactivity_limit_months,
        "set_by": f"{policy.owner.name} ({policy.level})",
    }
    update = (
        "UPDATE accounts_user u SET is_active = false, deactivated_at = %(stamp)s "
        f"WHERE u.is_active AND u.last_active_at < %(cutoff)s AND u.id IN ({scope})"
    )
    if bare:
        cur.execute(update, params)
        return cur.rowcount
    cur.execute(
        f"WITH over AS ({update} RETURNING u.id, u.email), "
        "ended AS (DELETE FROM accounts_usersession s USING over WHERE s.user_id = over.id) "
        "INSERT INTO security_auditevent (created_at, actor_id, actor_label, entity_id, "
        "entity_group_id, action, target_type, target_id, target_label, data, ip) "
        "SELECT %(stamp)s, NULL, '', NULL, NULL, 'user.deactivated', 'accounts.user', "
        "over.id::text, over.email, jsonb_build_object('reason', 'inactivity', "
        "'limit_months', %(months)s::integer, 'set_by', %(set_by)s::text), NULL FROM over",
        params,
    )
    return cur.rowcount


# --- Anonymisation ----------------------------------------------------------------------------


def build_customer_to_anonymise(ctx, admin):
    """A fresh customer of the big tenant: 50 contacts, 2,000 paid invoices (balance 0),
    5,000 consent events, 200 audit events, 3 links with 20 uses each, 2 secrets."""
    from django.utils import timezone

    from accounts.tenancy import tenant_scope
    from consent.models import ConsentEvent, ConsentPurpose, ConsentState
    from customers.models import ContactPerson, Customer, CustomerLink, Invoice, LinkUse, Secret
    from security.models import AuditEvent

    rng = random.Random()
    now = timezone.now()
    number = f"ANON-{int(time.time() * 1000)}"
    with tenant_scope(ctx.big):
        customer = Customer.objects.create(
            entity=ctx.big,
            number=number,
            name=f"Anonymiseres Test {number} AS",
            organisation_number="912345678",
            address="Storgata 1\n0155 Oslo",
            email="post@anonymiseres.example",
            phone="+4722334455",
            notes="Contact Kari Nordmann about invoices.",
        )
        contacts = ContactPerson.objects.bulk_create(
            [
                ContactPerson(
                    entity=ctx.big,
                    customer=customer,
                    name=f"Kontakt {i} Nordmann",
                    title="Økonomisjef",
                    email=f"kontakt{i}@anonymiseres.example",
                    phone=f"+47912345{i:02d}",
                    notes="Prefers email",
                )
                for i in range(50)
            ]
        )
        Invoice.objects.bulk_create(
            [
                Invoice(
                    entity=ctx.big,
                    customer=customer,
                    number=f"{number}-{i}",
                    issued_on=now.date() - timedelta(days=i % 700),
                    due_on=now.date() - timedelta(days=i % 700) + timedelta(days=30),
                    amount=Decimal("1250.00") + i,
                    amount_paid=Decimal("1250.00") + i,
                    text="Services",
                )
                for i in range(2000)
            ],
            batch_size=1000,
        )
        purposes = list(ConsentPurpose.objects.filter(entity=ctx.big).order_by("position"))[:5]
        events, states = [], []
        for contact in contacts:
            for purpose in purposes:
                value = None
                for step in range(20):  # 50 x 5 x 20 = 5,000 events
                    new = not value if value is not None else True
                    events.append(
                        ConsentEvent(
                            entity=ctx.big,
                            contact=contact,
                            purpose=purpose,
                            old_value=value,
                            new_value=new,
                            source="self_service",
                            created_at=now - timedelta(days=400 - step * 10),
                            ip=f"198.51.100.{rng.randint(1, 254)}",
                            user_agent="Mozilla/5.0 (benchmark)",
                            privacy_policy_version="2025-01",
                        )
                    )
                    value = new
                states.append(
                    ConsentState(entity=ctx.big, contact=contact, purpose=purpose, granted=value)
                )
        ConsentEvent.objects.bulk_create(events, batch_size=1000)
        ConsentState.objects.bulk_create(states)
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(
                    created_at=now - timedelta(minutes=i),
                    actor=admin,
                    actor_label=admin.email,
                    entity=ctx.big,
                    action="customer.updated",
                    target_type="customers.customer",
                    target_id=str(customer.pk),
                    target_label=customer.name,
                    data={"fields": ["notes"], "old": "Kari Nordmann"},
                )
                for i in range(200)
            ]
        )
        for k in range(3):
            link = CustomerLink.objects.create(
                entity=ctx.big,
                customer=customer,
                contact=contacts[k],
                kind=CustomerLink.Kind.INTERACTIVE,
                token_hash=hashlib.sha256(os.urandom(16)).hexdigest(),
            )
            LinkUse.objects.bulk_create(
                [
                    LinkUse(entity=ctx.big, link=link, ip="198.51.100.9", user_agent="Mozilla")
                    for _ in range(20)
                ]
            )
        for k in range(2):
            secret = Secret(entity=ctx.big, customer=customer, title=f"Note {k}", created_by=admin)
            secret.set_body("Payment plan agreed by phone.")
            secret.save()
    return customer


def remove_customer(customer_id):
    from django.db import connection, transaction

    statements = [
        "DELETE FROM documents_linkuse WHERE link_id IN "
        "(SELECT id FROM documents_customerlink WHERE customer_id = %(c)s)",
        "DELETE FROM documents_customerlink WHERE customer_id = %(c)s",
        "DELETE FROM consent_consentevent WHERE contact_id IN "
        "(SELECT id FROM customers_contactperson WHERE customer_id = %(c)s)",
        "DELETE FROM consent_consentstate WHERE contact_id IN "
        "(SELECT id FROM customers_contactperson WHERE customer_id = %(c)s)",
        "DELETE FROM customers_secret_groups WHERE secret_id IN "
        "(SELECT id FROM customers_secret WHERE customer_id = %(c)s)",
        "DELETE FROM customers_secret WHERE customer_id = %(c)s",
        "DELETE FROM customers_contactperson WHERE customer_id = %(c)s",
        "DELETE FROM customers_invoice WHERE customer_id = %(c)s",
        "SELECT set_config('guardrail.audit_retention', 'on', true)",  # the log's trigger
        "DELETE FROM security_auditevent WHERE target_type = 'customers.customer' "
        "AND target_id = %(t)s",
        "DELETE FROM customers_customer WHERE id = %(c)s",
    ]
    with transaction.atomic(), connection.cursor() as cur:
        for statement in statements:
            cur.execute(statement, {"c": customer_id, "t": str(customer_id)})


def anonymisation(ctx):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.tenancy import tenant_scope
    from consent.anonymisation import ANONYM, anonymise
    from customers.models import ContactPerson, Customer

    admin = ctx.persona(ctx.big, "bench-admin")
    repeats = 1 if ctx.smoke else 3
    times, captured = [], None
    for _ in range(repeats):
        customer = build_customer_to_anonymise(ctx, admin)
        try:
            with tenant_scope(ctx.big), CaptureQueriesContext(connection) as q:
                t0 = time.perf_counter()
                anonymise(customer.pk, confirmation=customer.number, actor=admin)
                times.append(time.perf_counter() - t0)
            captured = list(q.captured_queries)
            with tenant_scope(ctx.big):
                after = Customer.objects.get(pk=customer.pk)
                names = set(
                    ContactPerson.objects.filter(customer=after).values_list("name", flat=True)
                )
            if after.name != ANONYM or names != {ANONYM}:
                raise RuntimeError("the customer was not anonymised")
        finally:
            remove_customer(customer.pk)
    result = Result(
        "anonymise_customer",
        "Anonymise a customer (50 contacts, 2,000 invoices, 5,000 consent events, 200 audit)",
        "s",
        product=round(statistics.median(times), 3),
    ).compare("<=", 1, on="product")
    slow = sorted(captured, key=lambda q: float(q["time"]), reverse=True)[:5]
    result.details = {
        "runs_s": [round(t, 3) for t in times],
        "queries": len(captured),
        "slowest_statements": [
            {"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"][:300]} for q in slow
        ],
    }
    return [result]


# --- Running everything -----------------------------------------------------------------------


def _error(exc):
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc} [{tb[-2].strip().splitlines()[0] if len(tb) > 1 else ''}]"


SCENARIOS = [
    (
        "http",
        "auth_page_throughput, document_link_throughput, document_link_checks, worker_peak_rss",
        http_scenarios,
    ),
    (
        "customer_list_collector",
        "",
        lambda c: customer_list(c, "bench-collector", "restricted collector"),
    ),  # noqa: E501
    ("customer_list_credit", "", lambda c: customer_list(c, "bench-credit", "credit manager")),
    ("customer_search_credit", "", lambda c: customer_search(c, "bench-credit", "credit manager")),  # noqa: E501
    (
        "customer_search_collector",
        "",
        lambda c: customer_search(c, "bench-collector", "restricted collector"),
    ),  # noqa: E501
    ("login_success", "", login_success),
    ("login_refused", "", login_refused),
    ("deactivation_job", "", deactivation),
    ("anonymise_customer", "", anonymisation),
]
EXPECTED_RESULTS = [
    "auth_page_throughput",
    "document_link_throughput",
    "document_link_checks",
    "worker_peak_rss",
    "customer_list_collector",
    "customer_list_queries_collector",
    "customer_list_credit",
    "customer_list_queries_credit",
    "customer_search_credit",
    "customer_search_collector",
    "login_success",
    "login_refused_account",
    "login_refused_ip",
    "login_refused_hashes",
    "deactivation_job",
    "anonymise_customer",
]


def run_all(scale, workdir, only=None, log=print):
    ctx = Ctx(scale, workdir, log)
    refresh_personas(ctx)
    results = []
    for key, _, fn in SCENARIOS:
        if only and not any(n.startswith(key) or key.startswith(n) for n in only):
            continue
        log(f"Scenario {key} ...")
        t0 = time.monotonic()
        try:
            produced = fn(ctx)
        except Exception as exc:  # noqa: BLE001 -- one broken scenario must not hide the others
            produced = [Result(key, key, "", error=_error(exc))]
        for r in produced:
            if not r.seconds:
                r.seconds = round(time.monotonic() - t0, 1)
            log(
                f"  {r.name}: {r.product} {r.unit}"
                + (f" vs {r.baseline} (ratio {r.ratio})" if r.baseline is not None else "")
                + (f" ERROR {r.error}" if r.error else "")
            )
        results.extend(produced)
    refresh_personas(ctx)
    return results
