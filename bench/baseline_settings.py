"""Baseline settings for the throughput scenarios: the product's settings with only
Django's session and authentication middleware in front of the views.

Everything else in `config.settings` is kept (same database, persistent connections,
templates, context processors, hashers); the product's own settings module is not
changed. Two bench-only additions, both needed to serve the *same* views:

- `bench.baseline_middleware.ViewPrerequisitesMiddleware` gives a view the request
  attributes it reads (`request.tenancy`, the tenant scope, `request.security_policies`
  for the role scope) -- exactly what `TenantMiddleware` computes, and nothing more: no
  IP allowlist, 2FA, password-age or activity checks, no CSP, CSRF, messages, clickjacking,
  OTP or axes middleware.
- `bench.baseline_urls` adds `/bench/file/`, a plain `FileResponse` of the benchmark PDF
  with no link checks (the document-link baseline).

Never use this module to serve the product.
"""

from config.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "bench.baseline_middleware.ViewPrerequisitesMiddleware",
]
ROOT_URLCONF = "bench.baseline_urls"
