"""Sending text messages: one small interface in front of the SMS provider.

The rest of the project calls `send_sms(to, body, entity=...)` and handles one exception,
`SmsError`; it never imports the provider's library (Twilio) and never sees its exceptions.
The backend is chosen from settings.SMS_BACKEND on every call:

- "console" prints the message and keeps it in `outbox` (development and tests);
- "twilio" sends it through Twilio's REST API with the official client.

Every failure is translated into an `SmsError` that says two things a caller needs:
`permanent` (True when sending the same message again cannot succeed: a number that cannot
receive texts, rejected credentials; False for timeouts, connection errors, rate limits and
provider outages, which are worth retrying) and `user_message`, a sentence written by us
that is safe to show to a user. Details for operators (status, provider error code) go to
the "security.sms" log; the auth token never appears in messages or logs.

Whatever the caller checked before, the gateway itself sends only to mobile numbers
(`security.phones.normalize_phone`) and only to numbers of the countries the entity it
sends for allows now (`countries_for`; without an entity, the default): a country removed
from the setting stops texts to numbers saved while it was allowed. Callers count each
text against the caps first (`security.ratelimit.spend_sms`).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone

from security.models import SecurityPolicy, default_sms_countries
from security.phones import check_country, mask_phone, normalize_phone

logger = logging.getLogger("security.sms")

USER_MESSAGE_BAD_NUMBER = (
    "The phone number on file cannot receive text messages. Ask an administrator to correct it."
)
USER_MESSAGE_UNAVAILABLE = (
    "Text messages cannot be sent right now. Try again later or contact your administrator."
)
USER_MESSAGE_RETRY = "The text message could not be sent. Try again in a minute."
USER_MESSAGE_COUNTRY = (
    "The phone number on file is not from a country whose numbers may receive codes here. "
    "Ask an administrator to correct it."
)

# Twilio error codes (https://www.twilio.com/docs/api/errors) that blame the recipient's
# number rather than our account or request.
TWILIO_RECIPIENT_CODES = {
    21211,  # invalid 'To' phone number
    21214,  # 'To' phone number cannot be reached
    21217,  # phone number does not appear to be valid
    21408,  # sending to the 'To' number's region is not enabled
    21610,  # recipient has unsubscribed (replied STOP)
    21612,  # 'To' number is not reachable via SMS
    21614,  # 'To' number is not a mobile number
}


class SmsError(Exception):
    """A text message was not sent.

    str(error) is a description for operators; show users `user_message` only.
    `reason` is "recipient" (the number cannot receive texts), "configuration" (our
    account or settings are wrong) or "unavailable" (temporary; try again).
    """

    def __init__(self, detail, *, permanent, user_message, reason):
        super().__init__(detail)
        self.permanent = permanent
        self.user_message = user_message
        self.reason = reason


def _recipient_error(detail):
    return SmsError(
        detail, permanent=True, user_message=USER_MESSAGE_BAD_NUMBER, reason="recipient"
    )


def _configuration_error(detail):
    return SmsError(
        detail, permanent=True, user_message=USER_MESSAGE_UNAVAILABLE, reason="configuration"
    )


def _temporary_error(detail):
    return SmsError(detail, permanent=False, user_message=USER_MESSAGE_RETRY, reason="unavailable")


@dataclass(frozen=True)
class SentSms:
    to: str
    body: str
    sent_at: datetime


# Messages "sent" by the console backend, oldest first; tests read and clear it like
# django.core.mail.outbox.
outbox: list[SentSms] = []


class ConsoleBackend:
    """Prints messages instead of sending them; for development and tests."""

    def send(self, to, body):
        outbox.append(SentSms(to=to, body=body, sent_at=timezone.now()))
        logger.info("SMS to %s: %s", to, body)
        print(f"[SMS console backend] SMS to {to}: {body}", flush=True)
        return f"console-{uuid.uuid4().hex}"


class TwilioBackend:
    """Sends messages through Twilio's Programmable Messaging API."""

    def _client(self):
        # Imported here so that only this backend depends on the twilio package.
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        sid, token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
        if not (sid and token and settings.TWILIO_FROM_NUMBER):
            raise _configuration_error(
                "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                "TWILIO_FROM_NUMBER."
            )
        client = Client(
            sid, token, http_client=TwilioHttpClient(timeout=settings.SMS_TIMEOUT_SECONDS)
        )
        if settings.TWILIO_API_BASE_URL:
            # The Api domain joins base_url + "/2010-04-01/Accounts/<sid>/Messages.json" at
            # request time. Region/edge (which the client also reads from the TWILIO_REGION
            # and TWILIO_EDGE environment variables) would rewrite the host name; a fixed
            # base URL must be used as it is.
            client.api.base_url = settings.TWILIO_API_BASE_URL.rstrip("/")
            client.region = client.edge = None
        return client

    def send(self, to, body):
        from twilio.base.exceptions import TwilioException

        client = self._client()
        try:
            message = client.messages.create(to=to, from_=settings.TWILIO_FROM_NUMBER, body=body)
        except TwilioException as exc:
            raise self._translate_api_error(exc, to) from None
        except requests.exceptions.RequestException as exc:
            raise self._translate_network_error(exc, to) from None
        except ValueError as exc:  # a 2xx answer that is not JSON
            logger.warning("Twilio sent an unreadable answer for an SMS to %s.", mask_phone(to))
            raise _temporary_error(
                f"Unreadable answer from Twilio: {type(exc).__name__}."
            ) from None
        return message.sid

    def _translate_api_error(self, exc, to):
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None)
        # TwilioRestException carries .msg; RFC 9457 answers (TwilioServiceException)
        # carry .title and .detail.
        text = (
            getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
        )
        masked = mask_phone(to)
        detail = _redact(f"Twilio answered HTTP {status} (error code {code}): {text}", to)
        if status in (400, 404) and code in TWILIO_RECIPIENT_CODES:
            logger.warning("SMS to %s refused by Twilio: %s", masked, detail)
            return _recipient_error(detail)
        if status == 408 or status == 429 or (isinstance(status, int) and status >= 500):
            logger.warning("SMS to %s not sent, temporary Twilio failure: %s", masked, detail)
            return _temporary_error(detail)
        if status in (401, 403):
            logger.error(
                "Twilio rejected the account credentials (HTTP %s, error code %s). "
                "Check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
                status,
                code,
            )
            return _configuration_error(detail)
        # Any other refusal (invalid 'From' number, unknown account, message too long, an
        # error without a status...) is about our request, not the user's number.
        logger.error("SMS to %s refused by Twilio: %s", masked, detail)
        return _configuration_error(detail)

    def _translate_network_error(self, exc, to):
        detail = _redact(f"Could not reach Twilio: {type(exc).__name__}: {exc}", to)
        if isinstance(
            exc,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema,
        ):
            logger.error("SMS not sent, the Twilio address is misconfigured: %s", detail)
            return _configuration_error(detail)
        logger.warning("SMS to %s not sent, Twilio unreachable: %s", mask_phone(to), detail)
        return _temporary_error(detail)


def _redact(text, to):
    """Keep the auth token and the full phone number out of messages and logs."""
    token = settings.TWILIO_AUTH_TOKEN
    if token:
        text = text.replace(token, "[redacted]")
    return text.replace(to, mask_phone(to))


BACKENDS = {"console": ConsoleBackend, "twilio": TwilioBackend}


def get_backend():
    try:
        return BACKENDS[settings.SMS_BACKEND]()
    except KeyError:
        raise ImproperlyConfigured(
            f"SMS_BACKEND={settings.SMS_BACKEND!r} is not one of: {', '.join(BACKENDS)}."
        ) from None


def countries_for(entity):
    """The ISO codes of the countries whose mobile numbers may receive codes sent for
    `entity` (its security setting; the default until its policy is first saved)."""
    if entity is None:
        return default_sms_countries()
    codes = (
        SecurityPolicy.objects.filter(entity=entity).values_list("sms_countries", flat=True).first()
    )
    return list(codes) if codes else default_sms_countries()


def send_sms(to: str, body: str, *, entity=None) -> str:
    """Send `body` to the phone number `to`; return the provider's message id.

    `to` is normalised to E.164 first; a number that is not a mobile number, or not from
    a country `entity` allows (without an entity: the default countries), raises SmsError
    (permanent) without contacting the provider. Raises SmsError on any failure.
    """
    if not body:
        raise ValueError("An SMS needs a body.")
    try:
        to = normalize_phone(to)
    except ValidationError as exc:
        raise _recipient_error(f"Not a number that can receive SMS: {exc.messages[0]}") from None
    try:
        check_country(to, countries_for(entity))
    except ValidationError:
        where = f"entity {entity.pk}" if entity is not None else "the default countries"
        logger.warning(
            "SMS to %s not sent: its country is not allowed by %s.", mask_phone(to), where
        )
        raise SmsError(
            f"{mask_phone(to)} is not from a country allowed by {where}.",
            permanent=True,
            user_message=USER_MESSAGE_COUNTRY,
            reason="recipient",
        ) from None
    return get_backend().send(to, body)
