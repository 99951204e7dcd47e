"""The benchmark data set: a dedicated PostgreSQL database filled through COPY.

Full mode: 1,000,000 customers over 100 entities in 2 multi-entity accesses, 10,000 users
with every role, 2,000,000 contact persons, 1,000,000 invoices, consent history and an
audit log of 500,000 events. Smoke mode: the same shape, tiny.

The deactivation scenario's users (1,000,000 in full mode, 10 % over the inactivity limit)
are not part of the permanent data set: `add_idle_users` COPYs them into a separate entity
(`bench-deactivation`, built here with its policy) for that scenario only and
`remove_idle_users` deletes them afterwards, so every other scenario sees the 10,000 users.

The database is dedicated (`guardrail_bench` / `guardrail_bench_smoke`, or
`BENCH_DB_NAME`): it is created when missing, migrated with `call_command("migrate")`, and
reused when its marker row (table `bench_dataset`) says it holds a complete data set of
the same scale and generator version. An incomplete or different data set is dropped and
rebuilt -- only ever in a database whose name starts with `guardrail_bench`.

Rows are written with psycopg's COPY (`cursor.copy(...)`), FK triggers off for the
session (the generator only writes consistent ids), and one Argon2 hash made once with
the real settings' hasher and copied to every user.

Entity 0 is the largest tenant (Zipf-sized) and the last entity is a small reference
tenant with the same policy and personas, so one database answers both "full scale" and
"small scale" questions (e.g. query counts).
"""

import json
import os
import random
import sys
import time
from array import array
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

GENERATOR_VERSION = 6  # 6: the words of customer names (customers_customernameword)
BENCH_PASSWORD = "Bench-Password-42!"
MARKER_TABLE = "bench_dataset"
SAFE_PREFIX = "guardrail_bench"


def name_words_backfill():
    """The SQL that fills the customer name words table from the customers (migration
    0005's, imported by name: migration modules start with a digit)."""
    import importlib

    return importlib.import_module("customers.migrations.0005_customer_name_words").BACKFILL


# Networks listed on the benchmark tenants' allowlists (127.0.0.1 is in the first).
ALLOWLIST = ["127.0.0.0/8", "10.0.0.0/8", "192.0.2.0/24", "2001:db8::/48"]
RESTRICTED = ["collector", "sales", "sales_admin", "guest"]
ROLE_MIX = [  # (role, share, minimum) of an entity's own users
    ("admin", 0.03, 1),
    ("credit_manager", 0.08, 1),
    ("collector", 0.25, 2),
    ("sales", 0.30, 2),
    ("sales_admin", 0.10, 1),
    ("guest", 0.24, 1),
]
# Personas the scenarios sign in as: (label, role), first in their role's list.
PERSONAS_BIG = [
    ("bench-admin", "admin"),
    ("bench-credit", "credit_manager"),
    ("bench-collector", "collector"),
    ("bench-web1", "collector"),
    ("bench-web2", "collector"),
    ("bench-web3", "collector"),
    ("bench-web4", "collector"),
]
PERSONAS_SMALL = [
    ("bench-admin", "admin"),
    ("bench-credit", "credit_manager"),
    ("bench-collector", "collector"),
]
DEACTIVATION_SLUG = "bench-deactivation"

PREFIXES = (
    "Berg Fjell Nord Sør Vest Øst Sol Havn Elv Skog Stein Lys Storm Vind Bjørk Eik Furu "
    "Grå Rød Blå Kvit Gull Sølv Jern Kobber Tind Dal Vik Strand Mo"
).split()
ENDINGS = "heim land vik dal bakken nes holm berg lia stad by sund fjord haug tun gard vang li set rud".split()  # noqa: E501
TRADES = (
    "Bygg Fisk Optikk Sveis Bakeri Transport Elektro Rør Maling Data Regnskap Eiendom Handel "
    "Mat Tre Metall Marin Energi Helse Reklame Frisør Auto Blomster Catering Konsulent Design "
    "Entreprenør Glass Invest Kjøl"
).split()
SUFFIXES = ["AS", "AS", "AS", "AS", "ASA", "AB", "ANS", "DA", "Holding AS"]
FIRST = (
    "Anne Arne Bjørn Camilla Dag Eva Frode Gro Hilde Ivar Jon Kari Lars Mona Nils Ola Per "
    "Randi Siri Tor Une Vidar Åse Ingrid Henrik Maria Emil Nora Jakob Sara"
).split()
LAST = (
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen "
    "Johnsen Pettersen Eriksen Berg Haugen Hagen Johannessen Andreassen Jacobsen Dahl"
).split()
TITLES = ["Økonomisjef", "Daglig leder", "Regnskapsfører", "Innkjøper", "Controller", ""]
STREETS = ["Storgata", "Kirkegata", "Strandveien", "Industriveien", "Parkveien", "Skolegata"]
TOWNS = ["0155 Oslo", "5003 Bergen", "7010 Trondheim", "4006 Stavanger", "9008 Tromsø"]
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari",
]
PURPOSES = [  # mirrors consent.services.DEFAULT_PURPOSES (code, name, channel, basis)
    ("invoice_email", "Invoices and reminders by email", "email", "contract"),
    ("reminder_sms", "Reminders by SMS", "sms", "consent"),
    ("phone", "Phone calls", "phone", "legitimate_interest"),
    ("newsletter", "Newsletter", "email", "consent"),
    ("post", "Letters by post", "post", "contract"),
]


@dataclass(frozen=True)
class Scale:
    name: str
    db_name: str
    entities: int  # including the small reference entity (the last one)
    customers: int
    users: int  # users of the 100 entities and the 2 accesses (not the idle ones)
    contacts: int
    invoices: int
    consent_share: float  # share of contacts with a consent history
    audit_events: int
    deactivation_users: int  # users of the separate deactivation entity
    deactivation_over_share: float
    small_entity_customers: int
    group_main_admins: int
    group_credit_managers: int


FULL = Scale(
    name="full",
    db_name="guardrail_bench",
    entities=100,
    customers=1_000_000,
    users=10_000,
    contacts=2_000_000,
    invoices=1_000_000,
    consent_share=0.35,
    audit_events=500_000,
    deactivation_users=1_000_000,
    deactivation_over_share=0.10,
    small_entity_customers=60,
    group_main_admins=3,
    group_credit_managers=5,
)
SMOKE = Scale(
    name="smoke",
    db_name="guardrail_bench_smoke",
    entities=2,
    customers=200,
    users=50,
    contacts=400,
    invoices=200,
    consent_share=0.35,
    audit_events=500,
    deactivation_users=2_000,
    deactivation_over_share=0.10,
    small_entity_customers=40,
    group_main_admins=1,
    group_credit_managers=1,
)
SCALES = {"full": FULL, "smoke": SMOKE}


# --- Database URL and lifecycle --------------------------------------------------------------


class BenchConfigError(Exception):
    """A clear, one-line reason the benchmark cannot run."""


def dedicated_url(database_url, db_name):
    """DATABASE_URL with the database name replaced by the benchmark's own; refuses
    anything but PostgreSQL."""
    if not database_url:
        raise BenchConfigError(
            "Set DATABASE_URL to a PostgreSQL server (postgres://user@host:5432/any); the "
            "benchmark creates and fills its own database there."
        )
    parts = urlsplit(database_url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise BenchConfigError(
            f"The benchmark needs PostgreSQL, not {parts.scheme or 'an unknown scheme'!r}: "
            "its numbers (query plans, COPY, row locks) mean nothing on SQLite. Point "
            "DATABASE_URL at a PostgreSQL server."
        )
    if not db_name.startswith(SAFE_PREFIX):
        raise BenchConfigError(f"The benchmark database name must start with {SAFE_PREFIX!r}.")
    return urlunsplit((parts.scheme, parts.netloc, "/" + db_name, parts.query, parts.fragment))


def _conninfo(url, dbname=None):
    import dj_database_url

    cfg = dj_database_url.parse(url)
    info = {
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "dbname": dbname or cfg["NAME"],
    }
    return {k: v for k, v in info.items() if v not in (None, "")}


def read_marker(url):
    """The marker row of the data set in this database, or None (also if the database
    does not exist)."""
    import psycopg

    try:
        with psycopg.connect(**_conninfo(url), connect_timeout=5) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", [MARKER_TABLE]).fetchone()[0]
            if not exists:
                return {}
            row = conn.execute(
                f"SELECT scale, version, spec, complete, built_at, build_seconds FROM "
                f"{MARKER_TABLE} ORDER BY built_at DESC LIMIT 1"
            ).fetchone()
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if row is None:
        return {}
    scale, version, spec, complete, built_at, seconds = row
    return {
        "scale": scale,
        "version": version,
        "spec": spec,
        "complete": complete,
        "built_at": built_at.isoformat() if built_at else None,
        "build_seconds": seconds,
    }


def prepare_database(url, scale, log=print):
    """Make sure the dedicated database exists. Returns "reuse" when it already holds a
    complete data set of this scale, else "build" (after dropping a stale one)."""
    import psycopg
    from psycopg import sql

    name = _conninfo(url)["dbname"]
    if not name.startswith(SAFE_PREFIX):
        raise BenchConfigError(f"Refusing to manage database {name!r}.")
    marker = read_marker(url)
    wanted = {"scale": scale.name, "version": GENERATOR_VERSION, "spec": asdict(scale)}
    if marker and marker.get("complete") and all(marker.get(k) == v for k, v in wanted.items()):
        log(f"Reusing data set in {name} (built {marker['built_at']}).")
        return "reuse"
    try:
        admin = psycopg.connect(**_conninfo(url, "postgres"), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        admin = psycopg.connect(**_conninfo(url), autocommit=True, connect_timeout=5)
    with admin:
        if marker is not None:
            log(f"Dropping stale benchmark database {name} ({marker or 'no marker'}).")
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        log(f"Creating database {name}.")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return "build"


# --- Progress --------------------------------------------------------------------------------


class Progress:
    """One line per table: updated in place on a terminal, every ~10 % otherwise."""

    def __init__(self, label, total, stream=None):
        self.label, self.total = label, max(total, 1)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.done = 0
        self.next_report = 0.1
        self.last_draw = 0.0

    def add(self, n=1):
        self.done += n
        share = self.done / self.total
        now = time.monotonic()
        if self.tty and now - self.last_draw > 0.2:
            self.last_draw = now
            self._draw(share, end="\r")
        elif not self.tty and share >= self.next_report:
            self.next_report = (int(round(share * 1000)) // 100 + 1) / 10
            self._draw(share, end="\n")

    def _draw(self, share, end):
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed else 0
        self.stream.write(
            f"  {self.label:<22} {self.done:>10,}/{self.total:<10,} {share:6.1%} "
            f"{elapsed:6.1f}s {rate:>9,.0f} rows/s{end}"
        )
        self.stream.flush()

    def finish(self):
        if self.tty or self.next_report <= 1.0 or self.done != self.total:
            self._draw(self.done / self.total, end="\n")


# --- COPY helper -------------------------------------------------------------------------------


class Copier:
    """COPY rows of a model's table, filling any column the generator does not know (a
    field added later) with the field's default, so new fields do not break the build."""

    def __init__(self, cursor, model, columns, label=None, total=0):
        from django.db import connection
        from django.db.models import NOT_PROVIDED

        self.cursor, self.model = cursor, model
        fields = {f.attname: f for f in model._meta.concrete_fields}
        unknown = [c for c in columns if c not in fields]
        if unknown:
            raise RuntimeError(f"{model.__name__} has no columns {unknown}")
        extra, extra_values = [], []
        for attname, f in fields.items():
            if attname in columns:
                continue
            if getattr(f, "db_default", NOT_PROVIDED) is not NOT_PROVIDED:
                continue  # the database fills it
            if f.has_default():
                value = f.get_db_prep_save(f.get_default(), connection)
            elif f.null:
                value = None
            else:
                raise RuntimeError(
                    f"{model.__name__}.{attname} is NOT NULL without a default; "
                    "teach bench/data.py to generate it."
                )
            extra.append(f.column)
            extra_values.append(value)
        self.extra_values = tuple(extra_values)
        cols = [fields[c].column for c in columns] + extra
        self.sql = "COPY {} ({}) FROM STDIN".format(
            connection.ops.quote_name(model._meta.db_table),
            ", ".join(connection.ops.quote_name(c) for c in cols),
        )
        self.progress = Progress(label or model._meta.db_table, total) if total else None
        self.count = 0

    def __enter__(self):
        self._ctx = self.cursor.copy(self.sql)
        self.copy = self._ctx.__enter__()
        return self

    def write(self, row):
        self.copy.write_row(row + self.extra_values if self.extra_values else row)
        self.count += 1
        if self.progress and self.count % 2000 == 0:
            self.progress.add(2000)

    def __exit__(self, *exc):
        result = self._ctx.__exit__(*exc)
        if self.progress and exc[0] is None:
            self.progress.done = self.count
            self.progress.finish()
        return result


# --- Generation --------------------------------------------------------------------------------


def zipf_sizes(total, n, s=1.0, minimum=1):
    weights = [1 / (i + 1) ** s for i in range(n)]
    scale = total / sum(weights)
    sizes = [max(minimum, int(w * scale)) for w in weights]
    sizes[0] += total - sum(sizes)
    return sizes


def role_counts(n, personas):
    """How many users of each role an entity of `n` own users gets."""
    counts = {role: max(minimum, round(n * share)) for role, share, minimum in ROLE_MIX}
    for _, role in personas:  # personas come on top of the minimums if needed
        counts[role] = max(counts[role], sum(1 for _, r in personas if r == role) + 1)
    counts["guest"] += n - sum(counts.values())
    counts["guest"] = max(counts["guest"], 1)
    return counts


def company_name(rng):
    return (
        f"{rng.choice(PREFIXES)}{rng.choice(ENDINGS)} {rng.choice(TRADES)} {rng.choice(SUFFIXES)}"
    )


def person_name(rng):
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def build(scale, log=print):
    """Fill the (empty, migrated) database. Returns a summary dict."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import Entity, EntityGroup, GroupMembership, Membership, User
    from consent.models import ConsentEvent, ConsentPurpose, ConsentState
    from customers.models import ContactPerson, Customer, CustomerAssignment, Invoice
    from security.models import AllowedNetwork, AuditEvent, SecurityPolicy

    started = time.monotonic()
    rng = random.Random(20260101)
    now = datetime.now(UTC).replace(microsecond=0)
    # One Argon2 hash with the real settings' hasher, copied to every user.
    password_hash = make_password(BENCH_PASSWORD)
    if not password_hash.startswith("argon2"):
        raise BenchConfigError(f"Expected an Argon2 default hasher, got {password_hash[:12]!r}.")

    def next_id(model):
        with connection.cursor() as c:
            c.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{model._meta.db_table}"')
            return c.fetchone()[0] + 1

    summary = {}
    with connection.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '256MB'")

        # Groups, entities, policies ---------------------------------------------------------
        group_ids = []
        gid = next_id(EntityGroup)
        with Copier(cur, EntityGroup, ["id", "name", "created_at"]) as cp:
            for g in range(2):
                cp.write((gid + g, f"Bench Group {'AB'[g]}", now - timedelta(days=900)))
                group_ids.append(gid + g)
        n = scale.entities
        big_total = scale.customers - scale.small_entity_customers
        sizes = zipf_sizes(big_total, n - 1) + [scale.small_entity_customers]
        eid = next_id(Entity)
        entities = []  # dicts with id, slug, group, size
        with Copier(cur, Entity, ["id", "name", "slug", "group_id", "created_at"]) as cp:
            for i in range(n):
                slug = "bench-small" if i == n - 1 else f"bench-e{i:03d}"
                name = "Bench Small AS" if i == n - 1 else f"Bench Entity {i:03d} AS"
                group = group_ids[i % 2]
                entities.append({"id": eid + i, "slug": slug, "group": group, "size": sizes[i]})
                cp.write((eid + i, name, slug, group, now - timedelta(days=800)))
            deact_id = eid + n
            cp.write((deact_id, "Bench Deactivation AS", DEACTIVATION_SLUG, None, now))
        pid = next_id(SecurityPolicy)
        policy_of = {}
        policy_cols = [
            "id", "group_id", "entity_id", "password_max_age_days", "inactivity_limit_months",
            "require_2fa", "ip_allowlist_enabled", "ip_code_recipient", "restricted_roles",
            "interactive_link_days", "document_link_days", "updated_at",
        ]  # fmt: skip
        from psycopg.types.json import Jsonb

        with Copier(cur, SecurityPolicy, policy_cols) as cp:
            for k, g in enumerate(group_ids):
                cp.write(
                    (pid, g, None, 90 if k == 0 else 180, 12, False, False, "admins",
                     Jsonb([]), 30, 90, now)
                )  # fmt: skip
                pid += 1
            for i, e in enumerate(entities):
                reference = i == 0 or i == n - 1  # the big and the small tenant
                if reference:
                    values = (90, 6, False, True, "admins", RESTRICTED)
                else:
                    values = (
                        rng.choice([None, 30, 60, 90]),
                        rng.choice([None, 6, 12]),
                        False,
                        rng.random() < 0.2,
                        rng.choice(["admins", "user"]),
                        rng.choice([[], ["collector"], ["collector", "sales"], RESTRICTED]),
                    )
                age, idle, twofa, allow, recipient, restricted = values
                policy_of[e["id"]] = (pid, allow)
                cp.write(
                    (pid, None, e["id"], age, idle, twofa, allow, recipient,
                     Jsonb(restricted), 30, 90, now)
                )  # fmt: skip
                pid += 1
            cp.write((pid, None, deact_id, None, 6, False, False, "admins", Jsonb([]), 30, 90, now))

        # Users --------------------------------------------------------------------------------
        uid = next_id(User)
        user_cols = [
            "id", "password", "last_login", "is_superuser", "email", "full_name", "phone",
            "is_active", "is_staff", "date_joined", "password_changed_at", "last_active_at",
            "deactivated_at",
        ]  # fmt: skip
        group_users = []  # (user id, group id, role)
        entity_users = {}  # entity id -> {role: [user ids, personas first]}
        memberships = []  # (user id, entity id, role)
        personas = {}  # (slug, label) -> user id
        own_total = scale.users - 2 * (scale.group_main_admins + scale.group_credit_managers)
        user_weights = [e["size"] ** 0.75 for e in entities]
        per_entity = [max(12, int(own_total * w / sum(user_weights))) for w in user_weights]
        per_entity[0] += own_total - sum(per_entity)

        def user_row(user_id, email, active=True):
            joined = now - timedelta(days=rng.randint(60, 1500))
            last_active = now - timedelta(minutes=rng.randint(10, 60 * 24 * 60))
            changed = now - timedelta(days=rng.randint(1, 80))
            deactivated = None if active else now - timedelta(days=rng.randint(1, 300))
            phone = f"+4790{rng.randint(0, 999999):06d}" if rng.random() < 0.6 else ""
            return (
                user_id, password_hash, last_active if active else None, False, email,
                person_name(rng), phone, active, False, joined, changed, last_active,
                deactivated,
            )  # fmt: skip

        with Copier(cur, User, user_cols, "users", scale.users) as cp:
            for k, g in enumerate(group_ids):
                for role, count in (
                    ("main_admin", scale.group_main_admins),
                    ("credit_manager", scale.group_credit_managers),
                ):
                    for j in range(count):
                        email = f"{role.replace('_', '-')}-{j}@group-{'ab'[k]}.bench.example"
                        cp.write(user_row(uid, email))
                        group_users.append((uid, g, role))
                        uid += 1
            for i, e in enumerate(entities):
                slug = e["slug"]
                plist = PERSONAS_BIG if i == 0 else PERSONAS_SMALL if i == n - 1 else []
                counts = role_counts(per_entity[i], plist)
                by_role = {role: [] for role, _, _ in ROLE_MIX}
                for label, role in plist:
                    cp.write(user_row(uid, f"{label}@{slug}.bench.example"))
                    personas[(slug, label)] = uid
                    by_role[role].append(uid)
                    memberships.append((uid, e["id"], role))
                    uid += 1
                for role, _, _ in ROLE_MIX:
                    for j in range(counts[role] - len(by_role[role])):
                        active = rng.random() > 0.02
                        email = f"{role.replace('_', '-')}-{j}@{slug}.bench.example"
                        cp.write(user_row(uid, email, active))
                        by_role[role].append(uid)
                        memberships.append((uid, e["id"], role))
                        uid += 1
                entity_users[e["id"]] = by_role
        summary["users"] = cp.count
        # A few staff also work in a second entity of the same access.
        by_group = {}
        for e in entities:
            by_group.setdefault(e["group"], []).append(e["id"])
        extra = []
        persona_ids = set(personas.values())
        for user_id, entity_id, _role in memberships:
            if user_id not in persona_ids and rng.random() < 0.03:
                group = next(e["group"] for e in entities if e["id"] == entity_id)
                others = [x for x in by_group[group] if x != entity_id]
                if others:
                    extra.append((user_id, rng.choice(others), rng.choice(["guest", "sales"])))
        memberships += extra

        mid = next_id(Membership)
        with Copier(
            cur, Membership, ["id", "user_id", "entity_id", "role", "created_at"], "memberships",
            len(memberships),
        ) as cp:  # fmt: skip
            for user_id, entity_id, role in memberships:
                cp.write((mid, user_id, entity_id, role, now - timedelta(days=100)))
                mid += 1
        gmid = next_id(GroupMembership)
        with Copier(
            cur, GroupMembership, ["id", "user_id", "group_id", "role", "created_at"]
        ) as cp:
            for user_id, g, role in group_users:
                cp.write((gmid, user_id, g, role, now - timedelta(days=500)))
                gmid += 1

        # Allowlists of the tenants that turn it on (plus a few per-user approved addresses)
        nid = next_id(AllowedNetwork)
        with Copier(
            cur,
            AllowedNetwork,
            ["id", "policy_id", "network", "label", "for_user_id", "created_at"],
        ) as cp:
            for e in entities:
                policy_id, allow = policy_of[e["id"]]
                if not allow:
                    continue
                for net in ALLOWLIST:
                    cp.write((nid, policy_id, net, "Office", None, now))
                    nid += 1
                staff = [u for ids in entity_users[e["id"]].values() for u in ids]
                for user_id in rng.sample(staff, min(5, len(staff))):
                    addr = f"203.0.113.{rng.randint(1, 254)}/32"
                    cp.write((nid, policy_id, addr, "Approved by code", user_id, now))
                    nid += 1

        # Customers ----------------------------------------------------------------------------
        cid = next_id(Customer)
        customer_cols = [
            "id", "entity_id", "number", "name", "organisation_number", "address",
            "delivery_address", "email", "phone", "notes", "collector_id", "created_at",
        ]  # fmt: skip
        assignments = []
        ranges = {}
        with Copier(cur, Customer, customer_cols, "customers", scale.customers) as cp:
            for e in entities:
                roles = entity_users[e["id"]]
                collectors = roles["collector"]
                managers = roles["credit_manager"]
                # Zipf over collectors: the personas (first) manage the most customers.
                coll_cum = _cumulative([1 / (k + 1) ** 0.8 for k in range(len(collectors))])
                followers = roles["sales"] + roles["sales_admin"] + roles["guest"]
                foll_cum = _cumulative([1 / (k + 1) ** 0.6 for k in range(len(followers))])
                start = cid
                for j in range(e["size"]):
                    name = company_name(rng)
                    r = rng.random()
                    if r < 0.75:
                        collector = rng.choices(collectors, cum_weights=coll_cum)[0]
                    elif r < 0.85:
                        collector = rng.choice(managers)
                    else:
                        collector = None
                    word = name.split()[0].lower()
                    cp.write(
                        (cid, e["id"], str(100000 + j), name, f"9{rng.randint(0, 99999999):08d}",
                         f"{name}\n{rng.choice(STREETS)} {rng.randint(1, 120)}\n"
                         f"{rng.choice(TOWNS)}",
                         "", f"post@{word}.example", f"+4722{rng.randint(0, 999999):06d}",
                         "Customer since 2019. Prefers email." if rng.random() < 0.1 else "",
                         collector, now - timedelta(days=rng.randint(1, 2000)))
                    )  # fmt: skip
                    a = rng.random()
                    if followers and a < 0.35:
                        picks = {rng.choices(followers, cum_weights=foll_cum)[0]}
                        if a < 0.05:
                            picks.add(rng.choices(followers, cum_weights=foll_cum)[0])
                        for user_id in picks:
                            assignments.append((e["id"], cid, user_id))
                    cid += 1
                ranges[e["id"]] = (start, cid)
        # The name search's words table is kept by a trigger that COPY skipped here
        # (session_replication_role): filled by migration 0005's own backfill.
        cur.execute(name_words_backfill())
        aid = next_id(CustomerAssignment)
        with Copier(
            cur, CustomerAssignment, ["id", "entity_id", "customer_id", "user_id"],
            "assignments", len(assignments),
        ) as cp:  # fmt: skip
            for entity_id, customer_id, user_id in assignments:
                cp.write((aid, entity_id, customer_id, user_id))
                aid += 1
        summary["assignments"] = len(assignments)
        del assignments

        # Contacts: 0-4 per customer, averaging contacts/customers ---------------------------
        per_customer = array("B")
        mean = scale.contacts / scale.customers
        choices = [0, 1, 2, 3, 4]
        cum = _cumulative(_contact_weights(mean))
        kid_first = kid = next_id(ContactPerson)
        contact_cols = [
            "id",
            "entity_id",
            "customer_id",
            "name",
            "title",
            "email",
            "phone",
            "notes",
        ]
        with Copier(cur, ContactPerson, contact_cols, "contacts", scale.contacts) as cp:
            for e in entities:
                start, end = ranges[e["id"]]
                for customer_id in range(start, end):
                    k = rng.choices(choices, cum_weights=cum)[0]
                    per_customer.append(k)
                    for _ in range(k):
                        name = person_name(rng)
                        cp.write(
                            (kid, e["id"], customer_id, name, rng.choice(TITLES),
                             f"{name.split()[0].lower()}.{kid}@kunde.example",
                             f"+479{rng.randint(0, 9999999):07d}", "")
                        )  # fmt: skip
                        kid += 1
        summary["contacts"] = kid - kid_first

        # Invoices -----------------------------------------------------------------------------
        iid = next_id(Invoice)
        invoice_cols = [
            "id", "entity_id", "customer_id", "number", "issued_on", "due_on", "amount",
            "amount_paid", "currency", "text",
        ]  # fmt: skip
        inv_sizes = _proportional(scale.invoices, [e["size"] for e in entities])
        today = now.date()
        with Copier(cur, Invoice, invoice_cols, "invoices", scale.invoices) as cp:
            for e, count in zip(entities, inv_sizes, strict=True):
                start, end = ranges[e["id"]]
                for j in range(count):
                    customer_id = rng.randrange(start, end)
                    issued = today - timedelta(days=rng.randint(0, 720))
                    amount = Decimal(rng.randint(10000, 5000000)) / 100
                    r = rng.random()
                    paid = amount if r < 0.7 else Decimal(0) if r < 0.9 else (amount / 2)
                    cp.write(
                        (iid, e["id"], customer_id, f"F{e['id']}-{j + 1}", issued,
                         issued + timedelta(days=30), amount, paid.quantize(Decimal("0.01")),
                         "NOK", "Services rendered" if rng.random() < 0.2 else "")
                    )  # fmt: skip
                    iid += 1

        # Consent purposes, history and current state -------------------------------------------
        cpid = next_id(ConsentPurpose)
        purposes = {}
        with Copier(
            cur, ConsentPurpose,
            ["id", "entity_id", "code", "name", "channel", "legal_basis", "position", "active",
             "description"],
        ) as cp:  # fmt: skip
            for e in entities + [{"id": deact_id}]:
                purposes[e["id"]] = []
                for pos, (code, name, channel, basis) in enumerate(PURPOSES):
                    cp.write((cpid, e["id"], code, name, channel, basis, pos, True, ""))
                    purposes[e["id"]].append(cpid)
                    cpid += 1
        event_cols = [
            "id", "entity_id", "contact_id", "purpose_id", "old_value", "new_value", "source",
            "actor_id", "created_at", "ip", "user_agent", "privacy_policy_version",
        ]  # fmt: skip
        state_cols = ["id", "entity_id", "contact_id", "purpose_id", "granted", "updated_at"]
        states = []
        evid = next_id(ConsentEvent)
        expected_events = int(summary["contacts"] * scale.consent_share * 2.25)
        with Copier(cur, ConsentEvent, event_cols, "consent events", expected_events) as cp:
            contact_id = kid_first
            index = 0
            for e in entities:
                start, end = ranges[e["id"]]
                staff = entity_users[e["id"]]["credit_manager"] + entity_users[e["id"]]["collector"]
                for _customer_id in range(start, end):
                    for _ in range(per_customer[index]):
                        if rng.random() < scale.consent_share:
                            for purpose in rng.sample(purposes[e["id"]], rng.choice([1, 1, 2])):
                                value, old = None, None
                                when = now - timedelta(days=rng.randint(30, 900))
                                for _step in range(rng.choice([1, 2])):
                                    value = rng.random() < 0.7 if old is None else not old
                                    self_service = rng.random() < 0.3
                                    cp.write(
                                        (evid, e["id"], contact_id, purpose, old, value,
                                         "self_service" if self_service else "staff",
                                         None if self_service else rng.choice(staff),
                                         when,
                                         f"198.51.100.{rng.randint(1, 254)}" if self_service
                                         else None,
                                         rng.choice(UAS) if self_service else "",
                                         "2025-01" if self_service else "")
                                    )  # fmt: skip
                                    evid += 1
                                    old = value
                                    when += timedelta(days=rng.randint(1, 25))
                                states.append((e["id"], contact_id, purpose, value, when))
                        contact_id += 1
                    index += 1
        summary["consent_events"] = cp.count
        stid = next_id(ConsentState)
        with Copier(cur, ConsentState, state_cols, "consent states", len(states)) as cp:
            for entity_id, contact_id, purpose, value, when in states:
                cp.write((stid, entity_id, contact_id, purpose, value, when))
                stid += 1
        del states

        # Audit log: sign-ins, customer edits, settings changes --------------------------------
        auid = next_id(AuditEvent)
        audit_cols = [
            "id", "created_at", "actor_id", "actor_label", "entity_id", "entity_group_id",
            "action", "target_type", "target_id", "target_label", "data", "ip",
        ]  # fmt: skip
        staff_by_entity = [
            (e, [u for ids in entity_users[e["id"]].values() for u in ids]) for e in entities
        ]
        ent_cum = _cumulative([e["size"] for e in entities])
        with Copier(cur, AuditEvent, audit_cols, "audit events", scale.audit_events) as cp:
            for _ in range(scale.audit_events):
                e, staff = rng.choices(staff_by_entity, cum_weights=ent_cum)[0]
                actor = rng.choice(staff)
                when = now - timedelta(minutes=rng.randint(1, 60 * 24 * 365))
                ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
                r = rng.random()
                if r < 0.6:
                    row = (auid, when, actor, f"user{actor}@bench.example", None, None,
                           "auth.login.succeeded", "", "", "", Jsonb({}), ip)  # fmt: skip
                else:
                    start, end = ranges[e["id"]]
                    target = rng.randrange(start, end)
                    row = (auid, when, actor, f"user{actor}@bench.example", e["id"], None,
                           "customer.updated", "customers.customer", str(target),
                           f"Customer {target}", Jsonb({"fields": ["email"]}), ip)  # fmt: skip
                cp.write(row)
                auid += 1

        # Sequences, statistics, marker ------------------------------------------------------------
        cur.execute("SET session_replication_role = DEFAULT")
    _reset_sequences()
    log("  vacuum analyze ...")
    t = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")
    log(f"  vacuum analyze done in {time.monotonic() - t:.1f}s")
    summary.update(
        customers=scale.customers,
        invoices=scale.invoices,
        entities=scale.entities,
        deactivation_users=scale.deactivation_users,
        audit_events=scale.audit_events,
        biggest_entity_customers=entities[0]["size"],
        small_entity_customers=entities[-1]["size"],
        seconds=round(time.monotonic() - started, 1),
    )
    write_marker(scale, summary)
    return summary


def _cumulative(weights):
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _proportional(total, weights):
    s = sum(weights)
    out = [int(total * w / s) for w in weights]
    out[0] += total - sum(out)
    return out


def _contact_weights(mean):
    """Weights for 0..4 contacts per customer with the wanted mean (about 2)."""
    base = [0.08, 0.25, 0.35, 0.2, 0.12]  # mean 2.03
    got = sum(k * w for k, w in enumerate(base))
    shift = mean - got
    # Move weight between 1 and 3 to nudge the mean; plenty for the small corrections used.
    base[3] = max(0.0, base[3] + shift / 2)
    base[1] = max(0.0, base[1] - shift / 2)
    return base


def _reset_sequences():
    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import connection

    models = [m for m in apps.get_models(include_auto_created=True)]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    with connection.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def write_marker(scale, summary):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (scale text, version int, spec jsonb, "
            "complete boolean, built_at timestamptz, build_seconds float, summary jsonb)"
        )
        cur.execute(f"DELETE FROM {MARKER_TABLE}")
        cur.execute(
            f"INSERT INTO {MARKER_TABLE} VALUES (%s, %s, %s, true, now(), %s, %s)",
            [
                scale.name,
                GENERATOR_VERSION,
                json.dumps(asdict(scale)),
                summary.get("seconds"),
                json.dumps(summary),
            ],
        )


def marker_summary():
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"SELECT summary FROM {MARKER_TABLE} LIMIT 1")
        row = cur.fetchone()
    if not row:
        return {}
    return row[0] if isinstance(row[0], dict) else json.loads(row[0])


def idle_email(j):
    return f"idle-{j}@{DEACTIVATION_SLUG}.example"


def add_idle_users(scale, entity_id, now, log=print):
    """COPY the deactivation scenario's users into the separate entity: every tenth one
    over the entity's 6-month limit (7 to 18 months idle), the others active within it.
    Returns how many are over the limit."""
    from django.db import connection

    from accounts.models import Membership, User

    remove_idle_users(entity_id)
    rng = random.Random(99)
    with connection.cursor() as cur:
        cur.execute("SELECT password FROM accounts_user WHERE email LIKE 'bench-%%' LIMIT 1")
        password_hash = cur.fetchone()[0]
        cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM accounts_user")
        first = cur.fetchone()[0]
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET synchronous_commit = off")
        try:
            user_cols = [
                "id", "password", "last_login", "is_superuser", "email", "full_name", "phone",
                "is_active", "is_staff", "date_joined", "password_changed_at", "last_active_at",
                "deactivated_at",
            ]  # fmt: skip
            every = round(1 / scale.deactivation_over_share)
            over = 0
            n = scale.deactivation_users
            with Copier(cur, User, user_cols, "idle users", n) as cp:
                for j in range(n):
                    is_over = j % every == 0
                    over += is_over
                    idle_days = rng.randint(215, 540) if is_over else rng.randint(0, 150)
                    last = now - timedelta(days=idle_days, minutes=rng.randint(0, 1439))
                    cp.write(
                        (first + j, password_hash, last, False, idle_email(j), f"Idle User {j}",
                         "", True, False, last - timedelta(days=30), last - timedelta(days=10),
                         last, None)
                    )  # fmt: skip
            cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM accounts_membership")
            mid = cur.fetchone()[0]
            with Copier(
                cur, Membership, ["id", "user_id", "entity_id", "role", "created_at"],
                "idle memberships", n,
            ) as cp:  # fmt: skip
                for j in range(n):
                    cp.write((mid + j, first + j, entity_id, "guest", now - timedelta(days=600)))
        finally:
            cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("ANALYZE accounts_user")
        cur.execute("ANALYZE accounts_membership")
    _reset_sequences()
    return over


def remove_idle_users(entity_id):
    """Delete the deactivation scenario's users (and anything the job wrote about them)."""
    from django.db import connection

    pattern = f"idle-%@{DEACTIVATION_SLUG}.example"
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM accounts_membership WHERE entity_id = %s", [entity_id])
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SET session_replication_role = replica")  # nothing else refers to them
        try:
            cur.execute(
                "DELETE FROM accounts_usersession WHERE user_id IN "
                "(SELECT user_id FROM accounts_membership WHERE entity_id = %s)",
                [entity_id],
            )
            cur.execute(
                "DELETE FROM security_auditevent WHERE target_type = 'accounts.user' AND "
                "target_id IN (SELECT user_id::text FROM accounts_membership "
                "WHERE entity_id = %s)",
                [entity_id],
            )
            cur.execute("DELETE FROM accounts_membership WHERE entity_id = %s", [entity_id])
            cur.execute("DELETE FROM accounts_user WHERE email LIKE %s", [pattern])
            removed = cur.rowcount
        finally:
            cur.execute("SET session_replication_role = DEFAULT")
        # Leave no dead rows behind for the scenarios that scan users.
        cur.execute("VACUUM (ANALYZE) accounts_user")
        cur.execute("VACUUM (ANALYZE) accounts_membership")
        cur.execute("VACUUM (ANALYZE) security_auditevent")
    return removed


def ensure_dataset(scale, log=print):
    """Create/migrate the database named by settings and build the data set when needed.
    Must run after django.setup() with DATABASE_URL already pointing at the dedicated
    database (see bench.run)."""
    from django.core.management import call_command

    state = prepare_database(os.environ["DATABASE_URL"], scale, log=log)
    t = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    log(f"Migrated in {time.monotonic() - t:.1f}s.")
    if state == "build":
        log(f"Building the {scale.name} data set (COPY) ...")
        summary = build(scale, log=log)
        log(f"Data set built in {summary['seconds']}s.")
    return {"state": state, **marker_summary()}
