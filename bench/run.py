"""Run the benchmark: `.venv/bin/python -m bench.run [--smoke] [--json out.json]`.

DATABASE_URL must name a PostgreSQL server; the benchmark works in its own database there
(`guardrail_bench`, `guardrail_bench_smoke` with --smoke, or BENCH_DB_NAME), which it
creates, migrates, fills and reuses. See bench/README.md.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configure_environment(scale, db_name=None):
    """Environment for this process and the gunicorn servers it starts. Returns the env."""
    from bench.data import dedicated_url

    url = dedicated_url(os.environ.get("DATABASE_URL"), db_name or scale.db_name)
    name = db_name or scale.db_name
    work = Path(tempfile.gettempdir()) / "guardrail-bench" / name
    (work / "media").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": url,
            "DJANGO_MEDIA_ROOT": str(work / "media"),
            "DJANGO_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    )
    os.environ.pop("DATABASE_URL_FILE", None)
    return work


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data set, ~1 s per scenario")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--only", metavar="NAMES", help="comma-separated scenario names (default: all)"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build (or check) the data set and stop"
    )
    args = parser.parse_args(argv)

    from bench.data import FULL, SMOKE, BenchConfigError

    scale = SMOKE if args.smoke else FULL
    try:
        workdir = configure_environment(scale, os.environ.get("BENCH_DB_NAME"))
    except BenchConfigError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    import django

    django.setup()
    from django.conf import settings

    from config.env import POSTGRESQL_ENGINE

    if settings.DATABASES["default"]["ENGINE"] != POSTGRESQL_ENGINE:
        print("bench: the settings did not select PostgreSQL; refusing to run.", file=sys.stderr)
        return 2

    from bench.data import ensure_dataset

    started = time.monotonic()
    log = _log
    try:
        dataset = ensure_dataset(scale, log=log)
    except BenchConfigError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.build_only:
        log(json.dumps(dataset, indent=2, default=str))
        return 0

    from bench.scenarios import run_all

    only = set(args.only.split(",")) if args.only else None
    reference_before = host_reference()
    results = run_all(scale, workdir, only=only, log=log)
    reference_after = host_reference()
    report = {
        "mode": scale.name,
        "database": settings.DATABASES["default"]["NAME"],
        "dataset": dataset,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host_reference": {"before": reference_before, "after": reference_after},
        },
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": [r.as_dict() for r in results],
    }
    print()
    print(format_table(results))
    print(f"\n{scale.name} run, {report['seconds']} s in all; database {report['database']}.")
    print(
        "Host speed (median; before / after the scenarios): one Argon2id verify "
        f"{reference_before['argon2_verify_ms']} / {reference_after['argon2_verify_ms']} ms, "
        f"one SELECT 1 round trip {reference_before['select_1_ms']} / "
        f"{reference_after['select_1_ms']} ms. Absolute times scale with these."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 1 if any(r.error for r in results) else 0


def host_reference(verifies=5, round_trips=200):
    """How fast this host is right now, for reading absolute times across runs: the
    median of a few raw Argon2id verifies (the product's hasher) and of SELECT 1 round
    trips to the benchmark database."""
    import statistics

    from django.contrib.auth.hashers import get_hasher
    from django.db import connection

    hasher = get_hasher("default")
    encoded = hasher.encode("host reference", hasher.salt())
    verify_ms = []
    for _ in range(verifies):
        t0 = time.perf_counter()
        hasher.verify("host reference", encoded)
        verify_ms.append((time.perf_counter() - t0) * 1000)
    round_trip_ms = []
    with connection.cursor() as cursor:
        for _ in range(round_trips):
            t0 = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            round_trip_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "argon2_verify_ms": round(statistics.median(verify_ms), 1),
        "select_1_ms": round(statistics.median(round_trip_ms), 3),
    }


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _fmt(value, unit=""):
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()


def format_table(results):
    from bench.scenarios import DEPARTURES

    headers = ["scenario", "product", "baseline", "ratio", "target", "result"]
    rows = []
    for r in results:
        if r.error:
            verdict = "ERROR"
        elif r.passed is None:
            verdict = "-"
        else:
            verdict = "pass" if r.passed else "FAIL"
        rows.append(
            [
                r.name,
                _fmt(r.product, r.unit),
                _fmt(r.baseline, r.baseline_unit or r.unit),
                "-" if r.ratio is None else f"{r.ratio:.3f}",
                r.target,
                verdict,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    notes = [f"  {r.name}: {r.error or r.note}" for r in results if r.error or r.note]
    if notes:
        out += ["", "Notes:"] + notes
    departures = [
        f"  {r.name}: issue 8 asked {r.issue_target}; {DEPARTURES[r.name]}"
        for r in results
        if r.issue_target
    ]
    if departures:
        out += ["", "Targets that differ from issue 8 (bench/README.md has the figures):"]
        out += departures
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
