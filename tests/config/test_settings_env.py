"""Settings from the environment: strict parsing, clear messages, a guarded production."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import EnvError, database_from_url, env_bool, env_int, env_list, redis_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "raw,expected", [("true", True), ("On", True), ("0", False), ("no", False)]
)
def test_it_parses_booleans_strictly(raw, expected):
    assert env_bool("FLAG", None, environ={"FLAG": raw}) is expected


@pytest.mark.parametrize("raw", ["ture", "2", "enabled"])
def test_it_refuses_an_unclear_boolean_naming_the_variable(raw):
    with pytest.raises(EnvError, match=rf"FLAG='{raw}' is not a boolean"):
        env_bool("FLAG", False, environ={"FLAG": raw})


def test_it_uses_the_default_for_an_empty_value():
    assert env_bool("FLAG", True, environ={"FLAG": "  "}) is True
    assert env_int("N", 7, environ={}) == 7
    assert env_list("HOSTS", ("a",), environ={}) == ["a"]


def test_it_refuses_bad_numbers():
    with pytest.raises(EnvError, match="is not a whole number"):
        env_int("N", 1, environ={"N": "30d"})
    with pytest.raises(EnvError, match="must be at least 0"):
        env_int("N", 1, environ={"N": "-1"}, minimum=0)
    with pytest.raises(EnvError, match="must be at most 65535"):
        env_int("N", 1, environ={"N": "99999"}, minimum=1, maximum=65535)


def test_it_splits_lists_and_drops_blanks():
    assert env_list("H", environ={"H": "a.example, b.example,,"}) == ["a.example", "b.example"]


@pytest.mark.parametrize(
    "url,message",
    [
        ("mysql://u@h/db", "scheme 'mysql'"),
        ("postgress://u@h/db", "scheme 'postgress'"),
        ("not a url", "scheme '(none)'"),
        ("postgres://u@h:notaport/db", "cannot be parsed"),
        ("postgres://u@h:5432", "names no database"),
    ],
)
def test_it_explains_a_malformed_database_url(url, message):
    with pytest.raises(EnvError, match=re.escape(message)):
        database_from_url(url, 60)


def test_database_connections_are_persistent_with_health_checks():
    config = database_from_url("postgres://u@127.0.0.1:5432/app", 600)
    assert config["CONN_MAX_AGE"] == 600
    assert config["CONN_HEALTH_CHECKS"] is True
    assert config["ENGINE"] == "core.postgresql"


def test_it_refuses_a_url_that_is_not_redis():
    with pytest.raises(EnvError, match="is not a Redis URL"):
        redis_url("REDIS_URL", environ={"REDIS_URL": "http://localhost:6379"})
    assert redis_url("REDIS_URL", environ={"REDIS_URL": "redis://127.0.0.1:6379/0"})


def test_real_settings_hash_passwords_with_argon2():
    from django.contrib.auth.hashers import Argon2PasswordHasher
    from django.utils.module_loading import import_string

    import config.settings as real

    hasher = import_string(real.PASSWORD_HASHERS[0])
    assert issubclass(hasher, Argon2PasswordHasher)
    encoded = hasher().encode("Velvet-Harbor-42!", hasher().salt())
    assert encoded.startswith("argon2$argon2id$")
    assert hasher().verify("Velvet-Harbor-42!", encoded)
    assert not hasher().verify("velvet-harbor-42!", encoded)


# --- The process as an operator starts it ----------------------------------------------

GOOD_PRODUCTION = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-value-0123456789",
    "DJANGO_ALLOWED_HOSTS": "app.example.com",
    "SITE_URL": "https://app.example.com",
    "DATABASE_URL": "postgres://app@127.0.0.1:5432/app",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "FIELD_ENCRYPTION_KEYS": "aDeFSlcBqvAO4LoH7M5QNHExO1Ba1cd-pQ8EZpA3AoU=",
}


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    base.pop("REDIS_URL", None)
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **GOOD_PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "change,message",
    [
        ({"DJANGO_SECRET_KEY": ""}, "Set DJANGO_SECRET_KEY"),
        ({"DJANGO_DEBUG": "true"}, "Set DJANGO_DEBUG=false"),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "Set DJANGO_ALLOWED_HOSTS"),
        ({"REDIS_URL": ""}, "Set REDIS_URL"),
        ({"SITE_URL": ""}, "Set SITE_URL"),
        ({"SITE_URL": "http://app.example.com"}, "Set SITE_URL"),
        ({"DATABASE_URL": ""}, "Set DATABASE_URL"),
        ({"FIELD_ENCRYPTION_KEYS": ""}, "Set FIELD_ENCRYPTION_KEYS"),
    ],
)
def test_production_refuses_to_start_unsafe_with_one_line_saying_what_to_set(change, message):
    result = manage("check", **{**GOOD_PRODUCTION, **change})
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_database_url_stops_the_process_with_a_message_not_a_traceback():
    result = manage("check", DATABASE_URL="postgres://u@h:notaport/db")
    assert result.returncode != 0
    assert "Configuration error: DATABASE_URL cannot be parsed" in result.stderr
    assert "Traceback" not in result.stderr


def test_postgresql_statements_are_prepared_after_the_threshold_and_can_be_turned_off():
    prepared = database_from_url("postgres://u@h:5432/db", 60, prepare_threshold=5)
    assert prepared["OPTIONS"] == {
        "server_side_binding": True,
        "prepare_threshold": 5,
        "connect_timeout": 2,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
    }
    never = database_from_url("postgres://u@h:5432/db", 60, prepare_threshold=0)
    assert "server_side_binding" not in never.get("OPTIONS", {})
    sqlite = database_from_url("sqlite:///tmp/x.sqlite3", 0, prepare_threshold=5)
    assert "prepare_threshold" not in sqlite.get("OPTIONS", {})


@pytest.mark.parametrize(
    "value",
    ["guardrail.example.com", "ftp://guardrail.example.com", "https://", "https://h.example/app"],
)
def test_a_site_url_that_is_not_a_base_url_stops_the_process_naming_it(value):
    result = manage("check", **{**GOOD_PRODUCTION, "SITE_URL": value})
    assert result.returncode != 0
    assert f"SITE_URL={value!r}" in result.stderr
    assert "use https://host.example.com" in result.stderr
    assert "Traceback" not in result.stderr
