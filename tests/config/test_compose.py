"""The production docker-compose.yml and Dockerfile refer only to things that exist.

Docker is not needed: both files are parsed here, every command is resolved against the
project (gunicorn's WSGI target, the Celery app, Django management commands) and every
environment variable against config/settings.py. No database is used.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from celery import Celery
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands, load_command_class
from django.http.request import validate_host
from django.urls import resolve
from gunicorn.config import Config as GunicornConfig

from config import views

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LOCK_FILE = ROOT / "requirements.lock"
SETTINGS_SOURCES = (ROOT / "config" / "settings.py", ROOT / "config" / "env.py")

SERVICES = {"postgres", "redis", "web", "worker", "beat"}
APP_SERVICES = ("web", "worker", "beat")
# What an operator supplies to compose (shell or .env) in these tests.
OPERATOR_ENV = {
    "DJANGO_SECRET_KEY": "compose-test-" + "k" * 60,
    "POSTGRES_PASSWORD": "compose-test-password",
    "DJANGO_ALLOWED_HOSTS": "guardrail.example.com",
    "SITE_URL": "https://guardrail.example.com",
    "TRUSTED_PROXY_NETWORKS": "172.30.0.0/24",
    "FIELD_ENCRYPTION_KEYS": "aDeFSlcBqvAO4LoH7M5QNHExO1Ba1cd-pQ8EZpA3AoU=",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "compose-test-token",
    "TWILIO_FROM_NUMBER": "+4740000000",
}
REQUIRED_FROM_OPERATOR = tuple(OPERATOR_ENV)

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# --- Helpers -------------------------------------------------------------------------


def interpolate(value, given=OPERATOR_ENV):
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}; $$ is a literal $."""

    def replace(match):
        name, op, arg = match.group("name", "op", "arg")
        if name in given:
            return given[name]
        if op and op.endswith("?"):
            raise KeyError(f"compose refuses to start: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(replace, str(value).replace("$$", "\0")).replace("\0", "$")


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def commands(service):
    """The argv of each program a service's command runs (`sh -c "a && exec b"` is two)."""
    command = service.get("command")
    if command is None:
        return []
    argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    if argv[:2] == ["sh", "-c"]:
        found = []
        for part in argv[2].split("&&"):
            words = shlex.split(part)
            found.append(words[1:] if words[:1] == ["exec"] else words)
        return found
    return [argv]


def dockerfile_instructions():
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip()
    ]


def dockerfile_env():
    env = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
    return env


def dockerfile_runs():
    return [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]


def volume_targets(service):
    """{target path: named volume} for a service's `name:/path` volumes."""
    targets = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        targets[target] = source
    return targets


def settings_source():
    return "\n".join(path.read_text() for path in SETTINGS_SOURCES)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


# --- Services and health -------------------------------------------------------------


def test_it_defines_the_five_services(services):
    assert set(services) == SERVICES


@pytest.mark.parametrize("name", ["postgres", "redis", "web", "worker"])
def test_it_gives_the_service_an_enabled_healthcheck(services, name):
    healthcheck = services[name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}


def test_it_checks_postgres_over_tcp_as_the_application_role(services):
    postgres = services["postgres"]
    env = environment(postgres)
    argv = postgres["healthcheck"]["test"][1:]
    assert argv[0] == "pg_isready"
    assert argv[argv.index("-h") + 1] == "127.0.0.1"
    assert argv[argv.index("-U") + 1] == env["POSTGRES_USER"]
    assert argv[argv.index("-d") + 1] == env["POSTGRES_DB"]


def test_it_pings_redis(services):
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_it_pings_the_worker_by_its_own_node_name_through_celery(services):
    worker = services["worker"]
    kind, script = worker["healthcheck"]["test"]
    argv = shlex.split(script)
    assert kind == "CMD-SHELL"  # the shell expands $HOSTNAME
    assert argv[:5] == ["celery", "-A", "config", "inspect", "ping"]
    assert "inspect" in celery_cli.commands
    # The worker's default node name is celery@<hostname>; $$ is compose's literal $.
    assert argv[argv.index("--destination") + 1] == "celery@$$HOSTNAME"
    worker_argv = commands(worker)[0]
    assert not {"-n", "--hostname"} & set(worker_argv), "a custom node name breaks the ping"


def test_it_leaves_beat_without_a_healthcheck(services):
    # Beat has no remote control to ping; `restart` covers a crash.
    assert "healthcheck" not in services["beat"]
    assert services["beat"]["restart"] == "unless-stopped"


def test_the_web_healthcheck_is_python_fetching_readyz(services):
    # Readiness: the worker and beat wait for the web to be healthy (migrations applied).
    test = services["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/readyz" in test[3]
    assert resolve("/readyz").func is views.readyz


def _run_web_healthcheck(services, monkeypatch, allowed_hosts, status=200):
    script = services["web"]["healthcheck"]["test"][3]
    sent = []

    class Response:
        def __init__(self):
            self.status = status

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(request, timeout):
        sent.append(request)
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", allowed_hosts)
    exec(compile(script, "web-healthcheck", "exec"), {"__name__": "__main__"})
    (request,) = sent
    return request


@pytest.mark.parametrize(
    "allowed_hosts",
    ["guardrail.example.com", "guardrail.example.com,other.example", ".example.com", "*"],
)
def test_the_web_healthcheck_presents_itself_as_the_tls_proxy_would(
    services, monkeypatch, allowed_hosts
):
    # Production redirects plain HTTP to HTTPS and answers 400 to an unknown Host, so a
    # bare GET of 127.0.0.1:8000 would never be healthy.
    request = _run_web_healthcheck(services, monkeypatch, allowed_hosts)
    assert request.full_url == "http://127.0.0.1:8000/readyz"
    assert request.get_method() == "GET"
    assert validate_host(request.get_header("Host"), allowed_hosts.split(","))
    assert request.get_header("X-forwarded-proto") == "https"


def test_the_web_healthcheck_fails_unless_readyz_answers_200(services, monkeypatch):
    with pytest.raises(SystemExit, match="503"):
        _run_web_healthcheck(services, monkeypatch, "guardrail.example.com", status=503)


# --- One image, one environment for web, worker and beat -----------------------------


def test_it_builds_web_worker_and_beat_from_the_same_image(services):
    builds = {json.dumps(services[name].get("build"), sort_keys=True) for name in APP_SERVICES}
    images = {services[name].get("image") for name in APP_SERVICES}
    assert builds == {json.dumps(".")}
    assert len(images) == 1 and None not in images


def test_it_gives_web_worker_and_beat_the_shared_environment(compose, services):
    shared = compose["x-app-env"]
    assert shared["DJANGO_ENV"] == "production"
    for name in APP_SERVICES:
        assert environment(services[name]) == shared, name


def test_it_writes_every_environment_value_as_a_string_or_number(services):
    # Compose rejects YAML booleans (an unquoted `false`) in `environment`.
    for name, service in services.items():
        for key, value in environment(service).items():
            assert isinstance(value, str | int) and not isinstance(value, bool), (name, key)


def test_it_sets_only_environment_variables_that_the_settings_read(services):
    source = settings_source()
    for name in APP_SERVICES:
        for key in environment(services[name]):
            assert f'"{key}"' in source, f"{name}: {key} is not read by config/settings.py"
    for key in environment(services["postgres"]):
        assert key.startswith("POSTGRES_"), key


def test_it_refuses_to_start_without_the_operator_secrets(compose, services):
    shared = compose["x-app-env"]
    for name in REQUIRED_FROM_OPERATOR:
        uses = [v for v in shared.values() if f"${{{name}" in str(v)]
        assert uses, f"{name} is not used"
        assert all(f"${{{name}:?" in str(v) for v in uses), f"{name} has a silent default"
    assert environment(services["postgres"])["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    with pytest.raises(KeyError, match="compose refuses to start"):
        interpolate(shared["DJANGO_SECRET_KEY"], given={})


def test_its_database_and_redis_urls_point_at_the_compose_services(compose, services):
    postgres = {k: interpolate(v) for k, v in environment(services["postgres"]).items()}
    database = urlsplit(interpolate(compose["x-app-env"]["DATABASE_URL"]))
    assert database.scheme == "postgres"
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    redis = urlsplit(interpolate(compose["x-app-env"]["REDIS_URL"]))
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)


def _production_settings(compose):
    """config.settings imported in a fresh process with exactly the compose environment."""
    env = {key: interpolate(value) for key, value in compose["x-app-env"].items()}
    env.update(PATH=os.environ.get("PATH", ""), DJANGO_SETTINGS_MODULE="config.settings")
    probe = (
        "import json\n"
        "from django.conf import settings as s\n"
        "print(json.dumps({'DEBUG': s.DEBUG, 'ENGINE': s.DATABASES['default']['ENGINE'],\n"
        "    'HOST': s.DATABASES['default']['HOST'], 'PROXY': s.SECURE_PROXY_SSL_HEADER,\n"
        "    'SSL_REDIRECT': s.SECURE_SSL_REDIRECT, 'CACHE': s.CACHES['default']['BACKEND'],\n"
        "    'EAGER': s.CELERY_TASK_ALWAYS_EAGER, 'STATIC_ROOT': str(s.STATIC_ROOT)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_its_environment_passes_the_production_settings_guard(compose):
    settings = _production_settings(compose)
    assert settings["DEBUG"] is False
    assert settings["ENGINE"] == "core.postgresql"
    assert settings["HOST"] == "postgres"
    assert settings["PROXY"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["SSL_REDIRECT"] is True
    assert settings["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert settings["EAGER"] is False  # tasks go to the worker, not run in the web process


# --- Commands ------------------------------------------------------------------------


def _all_commands(services):
    return [(name, argv) for name in APP_SERVICES for argv in commands(services[name])]


def test_every_app_service_has_a_command(services):
    for name in APP_SERVICES:
        assert commands(services[name]), name


def _gunicorn_commands(services):
    found = [argv for _, argv in _all_commands(services) if argv[0] == "gunicorn"]
    for instruction, args in dockerfile_instructions():
        if instruction == "CMD":
            found.append(json.loads(args))
    return found


def test_gunicorn_serves_an_importable_wsgi_application_on_port_8000(services):
    found = _gunicorn_commands(services)
    assert len(found) == 2, "web and the image's default command both start gunicorn"
    for argv in found:
        assert argv[0] == "gunicorn"
        options = GunicornConfig().parser().parse_args(argv[1:])
        (target,) = options.args
        module_name, attribute = target.split(":")
        module = __import__(module_name, fromlist=[attribute])
        assert callable(getattr(module, attribute)), target
        assert options.bind == ["0.0.0.0:8000"]


@pytest.mark.parametrize("name,subcommand", [("worker", "worker"), ("beat", "beat")])
def test_celery_runs_the_config_app(services, name, subcommand):
    (argv,) = commands(services[name])
    assert argv[:4] == ["celery", "-A", "config", subcommand]
    assert subcommand in celery_cli.commands
    import config.celery

    assert isinstance(config.celery.app, Celery)


def test_every_manage_py_command_is_a_known_management_command(services):
    known = get_commands()
    found = [argv for _, argv in _all_commands(services) if argv[:2] == ["python", "manage.py"]]
    assert found
    for argv in found:
        name, options = argv[2], argv[3:]
        assert name in known, f"manage.py {name} does not exist"
        command = load_command_class(known[name], name)
        command.create_parser("manage.py", name).parse_args(options)  # unknown option: error


def test_web_migrates_before_it_starts_gunicorn(services):
    programs = [argv[0] if argv[0] != "python" else argv[2] for argv in commands(services["web"])]
    assert programs.index("migrate") < programs.index("gunicorn")
    assert programs[-1] == "gunicorn"  # exec'd last, so it gets the stop signal


def test_web_depends_on_healthy_postgres_and_redis(services):
    depends_on = services["web"]["depends_on"]
    for name in ("postgres", "redis"):
        assert depends_on[name]["condition"] == "service_healthy", name


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_celery_starts_after_healthy_backends_and_a_migrated_web(services, name):
    depends_on = services[name]["depends_on"]
    for dependency in ("postgres", "redis", "web"):
        assert depends_on[dependency]["condition"] == "service_healthy", dependency


# --- Volumes -------------------------------------------------------------------------


def test_beat_keeps_its_schedule_on_a_named_volume(compose, services):
    (argv,) = commands(services["beat"])
    schedule = Path(argv[argv.index("--schedule") + 1])
    assert str(schedule.parent) in volume_targets(services["beat"])
    assert volume_targets(services["beat"])[str(schedule.parent)] in compose["volumes"]


def test_web_mounts_the_shared_static_volume_at_static_root(compose, services):
    static_root = compose["x-app-env"]["DJANGO_STATIC_ROOT"]
    assert volume_targets(services["web"]).get(static_root) == "static"
    assert "static" in compose["volumes"]
    assert dockerfile_env()["DJANGO_STATIC_ROOT"] == static_root
    assert _production_settings(compose)["STATIC_ROOT"] == static_root


def test_postgres_and_redis_keep_their_data_on_named_volumes(compose, services):
    assert volume_targets(services["postgres"])["/var/lib/postgresql/data"] in compose["volumes"]
    assert volume_targets(services["redis"])["/data"] in compose["volumes"]


def test_every_named_volume_is_declared(compose, services):
    for name, service in services.items():
        for source in volume_targets(service).values():
            assert source in compose["volumes"], (name, source)


# --- Dockerfile ----------------------------------------------------------------------


def test_the_image_is_python_311_slim():
    assert dockerfile_instructions()[0] == ("FROM", "python:3.11-slim")


def test_the_image_installs_the_lock_with_hashes_required():
    instructions = dockerfile_instructions()
    assert ("COPY", "requirements.lock ./") in instructions
    installs = [run for run in dockerfile_runs() if "pip install" in run]
    assert installs == ["pip install --require-hashes -r requirements.lock"]
    lock = LOCK_FILE.read_text()
    for package in ("gunicorn", "celery", "django"):
        assert re.search(rf"^{package}==\S+ \\\n\s+--hash=sha256:", lock, re.M), package


def test_the_image_runs_as_a_non_root_user():
    users = [args for instruction, args in dockerfile_instructions() if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    kinds = [instruction for instruction, _ in dockerfile_instructions()]
    assert kinds.index("USER") < kinds.index("CMD")


def test_the_image_copies_the_code_every_service_needs():
    copied = {
        args.split()[0].rstrip("/")
        for instruction, args in dockerfile_instructions()
        if instruction == "COPY"
    }
    from django.conf import settings

    local_apps = {app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()}
    assert local_apps, "no project apps found"
    assert local_apps | {"manage.py", "config", "templates", "static"} <= copied
    assert not {".", ".venv", "db.sqlite3", ".demo_password", ".git"} & copied


def test_the_image_prepares_writable_static_and_beat_directories(compose, services):
    (argv,) = commands(services["beat"])
    schedule_dir = str(Path(argv[argv.index("--schedule") + 1]).parent)
    static_root = compose["x-app-env"]["DJANGO_STATIC_ROOT"]
    (prepare,) = [run for run in dockerfile_runs() if "mkdir" in run]
    for path in (static_root, schedule_dir):
        assert re.search(rf"mkdir -p [^&]*{re.escape(path)}", prepare), path
        assert re.search(rf"chown app:app [^&]*{re.escape(path)}", prepare), path


def test_the_image_bakes_in_no_production_configuration():
    env = dockerfile_env()
    assert not {"DJANGO_ENV", "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} & set(env)


def test_the_image_exposes_port_8000():
    assert ("EXPOSE", "8000") in dockerfile_instructions()


def test_the_build_time_collectstatic_runs_without_production_secrets(tmp_path):
    (collect,) = [run for run in dockerfile_runs() if "collectstatic" in run]
    argv = shlex.split(collect)
    assignments = dict(word.split("=", 1) for word in argv if re.match(r"^\w+=", word))
    assert assignments == {"DJANGO_ENV": "development"}
    # The build step itself, with the image's environment and nothing else.
    env = {**dockerfile_env(), **assignments, "DJANGO_STATIC_ROOT": str(tmp_path / "static")}
    env["PATH"] = os.environ.get("PATH", "")
    program = argv[len(assignments) :]
    assert program == ["python", "manage.py", "collectstatic", "--noinput"]
    result = subprocess.run(
        [sys.executable, *program[1:]], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert any((tmp_path / "static").rglob("*.css"))
