"""Strict parsing of settings from environment variables.

Every value the product reads from its environment goes through these helpers so a typo
("ture", "30d", "postgress://") stops the process at start with a one-line message naming
the variable, instead of silently falling back to a default.
"""

import ipaddress
import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off"}


class EnvError(ImproperlyConfigured):
    """A configuration value from the environment is missing or malformed."""


def _raw(name, environ):
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(name, default=None, environ=os.environ):
    value = _raw(name, environ)
    return default if value is None else value


def env_file_or_str(name, default=None, environ=os.environ):
    """Read NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = _raw(f"{name}_FILE", environ)
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise EnvError(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None
    return env_str(name, default, environ)


def env_file_or_list(name, environ=os.environ):
    """Read NAME as a comma-separated list, or the file named by NAME_FILE: one item a line
    (blank lines ignored), for values that may contain commas."""
    path = _raw(f"{name}_FILE", environ)
    if path is None:
        return env_list(name, environ=environ)
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    except OSError as exc:
        raise EnvError(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None


def env_bool(name, default, environ=os.environ):
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    raise EnvError(
        f"{name}={value!r} is not a boolean; use one of: "
        f"{', '.join(sorted(TRUE_VALUES | FALSE_VALUES))}."
    )


def env_int(name, default, environ=os.environ, minimum=None, maximum=None):
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise EnvError(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise EnvError(f"{name}={value!r} must be at least {minimum}.")
    if maximum is not None and number > maximum:
        raise EnvError(f"{name}={value!r} must be at most {maximum}.")
    return number


def env_list(name, default=(), environ=os.environ):
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name, default=(), environ=os.environ):
    """Comma-separated IP networks or addresses (CIDR), as canonical network strings."""
    networks = []
    for item in env_list(name, default, environ):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise EnvError(
                f"{name} has {item!r}, which is not an IP address or network; "
                "use e.g. 10.0.0.0/8,127.0.0.1."
            ) from None
    return networks


def env_choice(name, choices, default, environ=os.environ):
    value = _raw(name, environ)
    if value is None:
        return default
    if value not in choices:
        raise EnvError(f"{name}={value!r} is not one of: {', '.join(choices)}.")
    return value


# Django's PostgreSQL backend with a health check that costs no round trip.
POSTGRESQL_ENGINE = "core.postgresql"


DATABASE_CONNECTION_OPTIONS = {
    "connect_timeout": 2,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}


def database_from_url(url, conn_max_age, prepare_threshold=0):
    """Turn DATABASE_URL into Django's DATABASES entry, refusing anything unclear.

    On PostgreSQL, `prepare_threshold` > 0 binds parameters on the server and prepares a
    statement after that many runs on one connection (0: never)."""
    import dj_database_url

    scheme = urlsplit(url).scheme
    if scheme not in {"postgres", "postgresql", "sqlite"}:
        raise EnvError(
            f"DATABASE_URL has scheme {scheme or '(none)'!r}; "
            "use postgres://user:password@host:port/name or sqlite:///path."
        )
    try:
        config = dj_database_url.parse(
            url, conn_max_age=conn_max_age, conn_health_checks=conn_max_age > 0
        )
    except ValueError as exc:
        raise EnvError(f"DATABASE_URL cannot be parsed: {exc}.") from None
    if scheme != "sqlite" and not config.get("NAME"):
        raise EnvError("DATABASE_URL names no database; end it with /<database name>.")
    if scheme != "sqlite":
        config["ENGINE"] = POSTGRESQL_ENGINE
        # A server that is down or unreachable fails the request within seconds (a 503:
        # core/middleware_db.py) instead of hanging it; keepalives notice a dead peer on
        # an open connection. The URL's own ?connect_timeout=... wins.
        options = config.setdefault("OPTIONS", {})
        for name, value in DATABASE_CONNECTION_OPTIONS.items():
            options.setdefault(name, value)
        if prepare_threshold:
            options.update(server_side_binding=True, prepare_threshold=prepare_threshold)
    return config


def site_url(name, default, environ=os.environ):
    """A base URL such as https://guardrail.example.com: a scheme and a host (and port), no
    path, query or fragment; a trailing slash is dropped."""
    value = _raw(name, environ)
    if value is None:
        return default
    parts = urlsplit(value.rstrip("/"))
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise EnvError(f"{name}={value!r} is not a base URL; use https://host.example.com.")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise EnvError(
            f"{name}={value!r} has more than a scheme and a host; use https://host.example.com."
        )
    return f"{parts.scheme}://{parts.netloc}"


def redis_url(name, environ=os.environ):
    value = _raw(name, environ)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.netloc or parts.path):
        raise EnvError(f"{name}={value!r} is not a Redis URL; use redis://host:6379/0.")
    return value
