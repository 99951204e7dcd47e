"""SMS: phone number rules, the console backend, and the Twilio backend driven through the
real twilio client against a fake Twilio server."""

import logging
import re
import time

import pytest
from django import forms
from django.core.exceptions import ValidationError
from django.test import override_settings

from security import sms
from security.phones import PhoneNumberField, mask_phone, normalize_phone
from security.sms import SmsError, send_sms
from tests.fake_twilio import FROM_NUMBER

MOBILE = "+4791234567"
UNPARSEABLE = "Enter a phone number such as +47 912 34 567."
NOT_MOBILE = "This number cannot receive text messages. Enter a mobile phone number."
BAD_NUMBER = (
    "The phone number on file cannot receive text messages. Ask an administrator to correct it."
)
UNAVAILABLE = (
    "Text messages cannot be sent right now. Try again later or contact your administrator."
)
RETRY = "The text message could not be sent. Try again in a minute."


@pytest.fixture(autouse=True)
def _empty_outbox():
    sms.outbox.clear()
    yield
    sms.outbox.clear()


# --- Phone numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("912 34 567", "+4791234567"),
        ("0047 912 34 567", "+4791234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("+1 415 555 2671", "+14155552671"),  # fixed line or mobile: cannot tell, accepted
    ],
)
def test_numbers_are_normalised_to_e164(raw, e164):
    assert normalize_phone(raw) == e164


@override_settings(PHONE_DEFAULT_REGION="SE")
def test_numbers_without_a_country_code_are_read_in_the_default_region():
    assert normalize_phone("070-123 45 67") == "+46701234567"
    assert normalize_phone("912 34 567", region="NO") == "+4791234567"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "Enter a phone number."),
        ("   ", "Enter a phone number."),
        ("abc", UNPARSEABLE),
        ("+47 123", "This phone number is too short. Check the digits and the country code."),
        ("+47 22 00 00 00", NOT_MOBILE),  # Oslo fixed line
        ("+47 800 12 345", NOT_MOBILE),  # toll-free
    ],
)
def test_numbers_that_cannot_receive_sms_are_refused(raw, message):
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw)
    assert caught.value.messages == [message]


def test_the_form_field_cleans_to_e164():
    class Form(forms.Form):
        phone = PhoneNumberField()

    form = Form({"phone": " 912 34 567 "})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == MOBILE
    assert 'type="tel"' in str(form["phone"])

    assert Form({"phone": "abc"}).errors == {"phone": [UNPARSEABLE]}
    assert Form({"phone": ""}).errors == {"phone": ["Enter a phone number."]}
    assert PhoneNumberField(required=False).clean("") == ""


def test_a_masked_number_shows_only_the_last_two_digits():
    assert mask_phone("+4791234567") == "+47 •• •• •• 67"
    assert mask_phone("+46701234567") == "+46 •• ••• •• 67"
    assert mask_phone("+14155552671") == "+1 ••• ••• ••71"
    assert mask_phone("") == ""
    for e164 in ("+4791234567", "+46701234567"):
        national = e164[3:]
        assert re.sub(r"\D", "", mask_phone(e164)) == e164[1:3] + national[-2:]


# --- Console backend ----------------------------------------------------------------------


@override_settings(SMS_BACKEND="console")
def test_the_console_backend_prints_and_keeps_the_message(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="security.sms"):
        message_id = send_sms("912 34 567", "Your code is 123456")
    assert message_id.startswith("console-")
    assert "SMS to +4791234567: Your code is 123456" in capsys.readouterr().out
    assert "Your code is 123456" in caplog.text
    [sent] = sms.outbox
    assert (sent.to, sent.body) == (MOBILE, "Your code is 123456")
    assert sent.sent_at is not None


@override_settings(SMS_BACKEND="console")
def test_a_number_that_cannot_receive_sms_is_refused_before_sending():
    with pytest.raises(SmsError) as caught:
        send_sms("+47 22 00 00 00", "Your code is 123456")
    assert caught.value.permanent and caught.value.user_message == BAD_NUMBER
    assert sms.outbox == []


# --- Twilio backend against the fake server -----------------------------------------------


def send_through(fake, to=MOBILE, body="Your code is 123456"):
    with override_settings(**fake.settings()):
        return send_sms(to, body)


def fails_with(fake, mode):
    fake.mode = mode
    with pytest.raises(SmsError) as caught:
        send_through(fake)
    return caught.value


def test_twilio_sends_the_message(fake_twilio):
    message_id = send_through(fake_twilio, to="912 34 567")
    assert re.fullmatch(r"SM[0-9a-f]{32}", message_id)
    [request] = fake_twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert request.form == {"To": MOBILE, "From": FROM_NUMBER, "Body": "Your code is 123456"}
    assert request.username == fake_twilio.account_sid


def test_an_invalid_number_is_a_permanent_failure_with_our_own_words(fake_twilio, caplog):
    error = fails_with(fake_twilio, "invalid_number")
    assert error.permanent and error.reason == "recipient"
    assert error.user_message == BAD_NUMBER
    assert "not a valid phone number" not in error.user_message
    assert "21211" in str(error)  # operators get the provider's code
    assert MOBILE not in caplog.text  # the log shows the number masked
    assert fake_twilio.auth_token not in caplog.text + str(error)


def test_rejected_credentials_are_a_permanent_failure_logged_for_operators(
    fake_twilio,  # noqa: F811
    caplog,
):
    error = fails_with(fake_twilio, "auth")
    assert error.permanent and error.reason == "configuration"
    assert error.user_message == UNAVAILABLE
    assert any(
        r.levelno == logging.ERROR and "TWILIO_AUTH_TOKEN" in r.getMessage() for r in caplog.records
    )
    assert fake_twilio.auth_token not in caplog.text + str(error)


def test_a_wrong_auth_token_is_refused_by_the_fake_like_by_twilio(fake_twilio):
    with override_settings(**fake_twilio.settings(TWILIO_AUTH_TOKEN="not-the-token")):
        with pytest.raises(SmsError) as caught:
            send_sms(MOBILE, "hello")
    assert caught.value.permanent and caught.value.user_message == UNAVAILABLE
    assert "not-the-token" not in str(caught.value)


@pytest.mark.parametrize("mode", ["rate_limited", "server_error"])
def test_rate_limits_and_outages_are_temporary(fake_twilio, mode):
    error = fails_with(fake_twilio, mode)
    assert not error.permanent and error.reason == "unavailable"
    assert error.user_message == RETRY


def test_a_slow_answer_times_out_as_a_temporary_failure(fake_twilio):
    started = time.monotonic()
    error = fails_with(fake_twilio, "slow")
    elapsed = time.monotonic() - started
    assert not error.permanent and error.user_message == RETRY
    assert 0.9 < elapsed < 5
    assert "Timeout" in str(error)


def test_an_unreachable_server_is_a_temporary_failure(fake_twilio):
    with override_settings(**fake_twilio.settings(TWILIO_API_BASE_URL="http://127.0.0.1:9")):
        with pytest.raises(SmsError) as caught:
            send_sms(MOBILE, "hello")
    assert not caught.value.permanent and caught.value.user_message == RETRY
    assert fake_twilio.requests == []
