"""Whether a contact consents to invoices and reminders by email: the one question documents
asks of consent before it emails anyone.

Consent sits above documents (its anonymisation calls documents' erasure), so documents
does not import it: the answer comes from the function `settings.EMAIL_CONSENT_CHECK`
names ("consent.services.reminder_email_consent"), the way Django plugs in a backend
(`EMAIL_BACKEND`). It is loaded when the app registry is ready (documents/apps.py), so a
missing or wrong setting stops the process at start: nothing is ever emailed for want of
an answer.
"""

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


@functools.cache
def _check():
    name = getattr(settings, "EMAIL_CONSENT_CHECK", "")
    try:
        return import_string(name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"EMAIL_CONSENT_CHECK must name the function that says whether a contact "
            f"consents to email (got {name!r}): {exc}"
        ) from exc


def email_consent(contact):
    """(granted, purpose) for invoices and reminders by email to `contact`."""
    return _check()(contact)
