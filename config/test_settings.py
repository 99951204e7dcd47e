"""Settings for the test suite: the real settings, tuned for speed.

Only the password hasher is swapped (Argon2 costs ~50 ms per hash by design, and the
suite creates hundreds of users); a test asserts that the real settings use Argon2.
"""

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True

# Emailed links in tests point where the test client's requests go.
SITE_URL = "http://testserver"
