"""All settings, read from environment variables (see the table in README.md).

With nothing set the project runs on its embedded development default: SQLite, console
email and SMS, Celery tasks executed eagerly in-process. DJANGO_ENV=production turns the
defaults strict and refuses to start with an unsafe configuration.
"""

from pathlib import Path

from cryptography.fernet import Fernet
from csp.constants import NONE, SELF

from config.env import (
    POSTGRESQL_ENGINE,
    EnvError,
    database_from_url,
    env_bool,
    env_choice,
    env_file_or_list,
    env_file_or_str,
    env_int,
    env_list,
    env_networks,
    env_str,
    redis_url,
    site_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DJANGO_ENV = env_choice("DJANGO_ENV", ("development", "production"), "development")
PRODUCTION = DJANGO_ENV == "production"

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production"
SECRET_KEY = env_file_or_str("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
# Old keys during a rotation (README "Rotating the secret key"): what they signed still
# verifies; everything new is signed with SECRET_KEY.
SECRET_KEY_FALLBACKS = env_file_or_list("DJANGO_SECRET_KEY_FALLBACKS")
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", () if PRODUCTION else ("127.0.0.1", "localhost", "[::1]")
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# How many reverse proxies in front of the web process append to X-Forwarded-For.
# 0 (the default) trusts no header: the client address is the socket's.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# X-Forwarded-For is believed only from these socket peers (the proxies' addresses): a
# request that reaches the web process directly cannot name its own address.
TRUSTED_PROXY_NETWORKS = env_networks(
    "TRUSTED_PROXY_NETWORKS", () if PRODUCTION else ("127.0.0.0/8", "::1/128")
)

# --- Database ------------------------------------------------------------------------
# Persistent connections: opening a PostgreSQL connection costs more CPU than rendering
# an authenticated page, so each worker keeps its connection (health-checked on reuse).
DATABASE_URL = env_file_or_str("DATABASE_URL")
CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0)
# Prepared statements: psycopg prepares a statement on a connection once it has run it
# this many times, so PostgreSQL stops planning it again on every request (planning a
# joined query cost more than running it: bench/README.md). Set 0 behind a connection
# pooler in transaction mode that cannot keep prepared statements.
DATABASE_PREPARE_THRESHOLD = env_int("DATABASE_PREPARE_THRESHOLD", 5, minimum=0)
DATABASES = {
    "default": database_from_url(
        DATABASE_URL or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        CONN_MAX_AGE,
        prepare_threshold=DATABASE_PREPARE_THRESHOLD,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and the shared cache ----------------------------------------
# The broker and the cache live in separate Redis databases (REDIS_CACHE_URL), so
# clearing or evicting the cache never drops queued tasks. A dead Redis costs a request
# at most REDIS_TIMEOUT_SECONDS per attempt: cached pages fall back to the database
# (core.cache), queued emails wait in the outbox for `requeue-stale-emails`, the SMS caps
# refuse to send (security.ratelimit).
REDIS_URL = redis_url("REDIS_URL")
REDIS_CACHE_URL = redis_url("REDIS_CACHE_URL") or REDIS_URL
REDIS_TIMEOUT_SECONDS = 0.5
if REDIS_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_CACHE_URL,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        }
    }
else:
    # Development only: one process, so a process-local cache is shared by everything.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Queuing a task while the broker is down fails at once (the email stays queued in the
# outbox) instead of retrying inside the request; the worker still waits for the broker
# at start.
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_SECONDS
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
    "max_retries": 0,  # publishing: one attempt to connect, then fail
}
CELERY_TASK_PUBLISH_RETRY = False

# Documents asks consent (the layer above it) whether a contact may be emailed through
# this function (documents/consent_check.py).
EMAIL_CONSENT_CHECK = "consent.services.reminder_email_consent"

# --- Applications --------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Operator classes in index expressions (the customer search's trigram index).
    "django.contrib.postgres",
    "django_scopes",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "core",
    "accounts",
    "security",
    "customers",
    "documents",
    "consent",
    "portal",
]

MIDDLEWARE = [
    # First, so its headers are final: every answer under /l/ and /c/ (customer links) is
    # no-store, no-referrer and noindex, whichever layer made it.
    "core.link_privacy.PrivateLinkAnswersMiddleware",
    # A plain 503 with Retry-After when the database is unreachable or does not answer,
    # from the view or any middleware below (core/middleware_db.py).
    "core.middleware_db.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from the web process (no proxy ships): hashed names, gzip/brotli
    # variants, long caching of hashed names. After SecurityMiddleware (its headers).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "core.middleware.CrossOriginResourcePolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.TenantMiddleware",
    "security.middleware.SecurityPolicyMiddleware",
    "customers.middleware.VisibilityMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.tenancy",
                "security.context_processors.password_expiry",
            ],
        },
    }
]

# --- Authentication ------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses blocked accounts and addresses before any password
    # is checked (see security.lockouts for the two counters).
    "axes.backends.AxesStandaloneBackend",
    "security.backends.EmailBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_HASHERS = [
    "security.hashers.Argon2idHasher",
    # Kept so accounts imported with an older hash can still log in; Django upgrades
    # the stored hash to Argon2 at their next successful login.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "security.passwords.ComplexityValidator",
        "OPTIONS": {"min_length": 9, "max_length": 128},
    },
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "full_name")},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "security.passwords.RecentPasswordValidator", "OPTIONS": {"remember": 5}},
]
PASSWORD_RESET_TIMEOUT = 60 * 60  # reset links work for one hour, once

# Lockouts (django-axes with the two counters of security.lockouts).
AXES_HANDLER = "security.lockouts.LockoutHandler"
AXES_LOCKOUT_CALLABLE = "security.lockouts.lockout_response"
AXES_CLIENT_IP_CALLABLE = "security.client_ip.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False
# Attempts refused during a block are not counted and do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False

# Database sessions that know their user, so sessions can be ended per user.
SESSION_ENGINE = "accounts.sessions"
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_HOURS", 12, minimum=1, maximum=24 * 366) * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Security headers ----------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if SESSION_COOKIE_SECURE:
    # __Host- cookies are only accepted Secure, for Path=/ and without a Domain, so a sibling
    # host (or a network attacker on plain HTTP) cannot plant a session or CSRF cookie.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SESSION_COOKIE_DOMAIN = CSRF_COOKIE_DOMAIN = None
    SESSION_COOKIE_PATH = CSRF_COOKIE_PATH = "/"
# Features no page of the product uses, turned off for every page (django-permissions-policy).
PERMISSIONS_POLICY = {
    "camera": [],
    "microphone": [],
    "geolocation": [],
    "payment": [],
    "usb": [],
}
# core.middleware: other sites may not embed or load the product's answers.
CROSS_ORIGIN_RESOURCE_POLICY = "same-origin"
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", PRODUCTION)
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# No inline scripts or styles anywhere, so the policy can stay this strict.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Email ---------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_file_or_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10, minimum=1)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@localhost")

# The one base URL of links in emails (password reset, document links, reminders, consent
# links): never the Host header of whichever request made them (core.http.site_url).
SITE_URL = site_url("SITE_URL", None if PRODUCTION else "http://127.0.0.1:8000")

# --- SMS (validation codes for new IP addresses) ------------------------------------------
# "console" prints messages (and keeps them in security.sms.outbox for tests); "twilio"
# sends them through Twilio's API with the credentials below.
SMS_BACKEND = env_choice("SMS_BACKEND", ("console", "twilio"), "console")
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = env_file_or_str("TWILIO_AUTH_TOKEN")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER")
# Only for tests against a fake Twilio server; production uses Twilio's own address.
TWILIO_API_BASE_URL = env_str("TWILIO_API_BASE_URL")
SMS_TIMEOUT_SECONDS = env_int("SMS_TIMEOUT_SECONDS", 10, minimum=1)
# Region used to read phone numbers written without a +country prefix.
PHONE_DEFAULT_REGION = env_str("PHONE_DEFAULT_REGION", "NO")
if SMS_BACKEND == "twilio" and not (
    TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER
):
    raise EnvError(
        "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER."
    )

# --- Encryption at rest (TOTP secrets, customer secrets) -----------------------------------
# Comma-separated Fernet keys, newest first; older keys still decrypt until
# `manage.py rotate_encryption_keys` has re-encrypted everything under the newest one.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
for _number, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise EnvError(
            f"FIELD_ENCRYPTION_KEYS entry {_number} is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from None
OTP_TOTP_ISSUER = "Guardrail"

# --- Internationalisation, static files ----------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "Europe/Oslo")
USE_I18N = True
USE_TZ = True

# Uploaded documents: stored through Django's storage API, never served directly (only
# through customer links and staff pages).
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(BASE_DIR / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# With DEBUG off, pages reference content-hashed names (collectstatic writes them, with
# .gz and .br variants) that WhiteNoise serves with a ten-year immutable cache header.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "config.staticfiles.StaticFilesStorage"  # WhiteNoise's, hashed and compressed
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Customer-link tokens show their first 4 characters only, in every line that reaches a
    # handler here and, at the source, in Django's request and runserver logs (whatever
    # handler reads those: core.logging). gunicorn's access log: config/gunicorn.py.
    "filters": {"mask_link_tokens": {"()": "core.logging.MaskLinkTokens"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["mask_link_tokens"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["mask_link_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        # Twilio's client logs every request line at INFO; its errors still come through.
        "twilio.http_client": {"level": "WARNING"},
        "django.request": {"filters": ["mask_link_tokens"]},
        # runserver's request lines (Django's own setup of this logger, plus the filter).
        "django.server": {
            "handlers": ["django.server"],
            "level": "INFO",
            "propagate": False,
            "filters": ["mask_link_tokens"],
        },
    },
}

# --- Production guard ----------------------------------------------------------------
if PRODUCTION:
    problems = []
    if SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append(
            "Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) to a random value of at "
            "least 50 characters."
        )
    for number, fallback in enumerate(SECRET_KEY_FALLBACKS, start=1):
        if fallback == DEVELOPMENT_SECRET_KEY or len(fallback) < 50:
            problems.append(
                f"DJANGO_SECRET_KEY_FALLBACKS entry {number} is not a secret key of at least "
                "50 characters (old keys only, one per entry)."
            )
    if DEBUG:
        problems.append("Set DJANGO_DEBUG=false: debug pages leak data in production.")
    if not ALLOWED_HOSTS:
        problems.append("Set DJANGO_ALLOWED_HOSTS to the comma-separated host names served.")
    if not DATABASE_URL or DATABASES["default"]["ENGINE"] != POSTGRESQL_ENGINE:
        problems.append("Set DATABASE_URL to a postgres:// URL: production runs on PostgreSQL.")
    if not FIELD_ENCRYPTION_KEYS:
        problems.append(
            "Set FIELD_ENCRYPTION_KEYS to one or more Fernet keys (newest first); "
            "generate one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`."
        )
    if not SITE_URL or not SITE_URL.startswith("https://"):
        problems.append(
            "Set SITE_URL to the https:// address customers and staff reach the product at "
            "(links in emails use it)."
        )
    if TRUSTED_PROXY_COUNT and not TRUSTED_PROXY_NETWORKS:
        problems.append(
            "Set TRUSTED_PROXY_NETWORKS to the address or network of the proxy in front "
            "(TRUSTED_PROXY_COUNT is set): forwarded addresses are believed only from it."
        )
    if not REDIS_URL:
        problems.append(
            "Set REDIS_URL: lockout counters, rate limits and Celery need a shared Redis."
        )
    if problems:
        raise EnvError("DJANGO_ENV=production refuses to start:\n  " + "\n  ".join(problems))
