"""Phone numbers that can receive the SMS validation codes.

Users type numbers in every local style ("912 34 567", "0047 912 34 567", "+46 70-123 45 67").
Everything that stores or sends a number goes through `normalize_phone`, which reads the
number with Google's libphonenumber rules (the `phonenumbers` package), refuses what cannot
be a number or cannot receive a text message, and returns one canonical form: E.164
("+4791234567"). That is the form the SMS provider expects and the form to compare numbers in.
`mask_phone` is for showing a number back to a user ("a code was sent to +47 •• •• •• 67")
without revealing it on screen.
"""

import phonenumbers
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, ValidationResult

EXAMPLE = "+47 912 34 567"
MASK = "\N{BULLET}"

# Number types that certainly cannot receive a text message. FIXED_LINE_OR_MOBILE (where
# libphonenumber cannot tell, e.g. the United States) and MOBILE are accepted, and so are
# types such as VOIP and PERSONAL_NUMBER that may forward to a handset.
NOT_SMS_CAPABLE = {
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
}

MESSAGES = {
    "required": "Enter a phone number.",
    "unparseable": f"Enter a phone number such as {EXAMPLE}.",
    "too_short": "This phone number is too short. Check the digits and the country code.",
    "too_long": "This phone number is too long. Check the digits and the country code.",
    "invalid": "This is not a valid phone number. Check the digits and the country code.",
    "not_mobile": "This number cannot receive text messages. Enter a mobile phone number.",
}


def _error(code):
    return ValidationError(MESSAGES[code], code=code)


def _parse(raw, region):
    try:
        return phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except NumberParseException:
        raise _error("unparseable") from None


def normalize_phone(raw, region=None, mobile_only=True):
    """Return `raw` as an E.164 string ("+4791234567") or raise ValidationError.

    Numbers without a "+country" prefix are read as numbers of `region` (an ISO 3166
    country code, default settings.PHONE_DEFAULT_REGION). With `mobile_only` (numbers that
    will get SMS) numbers that cannot receive text messages are refused.
    """
    raw = (raw or "").strip()
    if not raw:
        raise _error("required")
    number = _parse(raw, region)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in (ValidationResult.TOO_SHORT, ValidationResult.INVALID_LENGTH):
        # INVALID_LENGTH: between the lengths the country uses; almost always a missing digit.
        raise _error("too_short")
    if possible == ValidationResult.TOO_LONG:
        raise _error("too_long")
    if possible != ValidationResult.IS_POSSIBLE or not phonenumbers.is_valid_number(number):
        raise _error("invalid")
    if mobile_only and phonenumbers.number_type(number) in NOT_SMS_CAPABLE:
        raise _error("not_mobile")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def mask_phone(e164):
    """Show a number with every digit but the country code and the last two hidden.

    "+4791234567" -> "+47 •• •• •• 67" (grouped the way the country writes its numbers).
    """
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        number = None
    if number is None or not number.country_code:
        digits = [c for c in e164 if c.isdigit()]
        return MASK * max(len(digits) - 2, 0) + "".join(digits[-2:])
    text = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    prefix = f"+{number.country_code}"
    rest = text[len(prefix) :]
    digit_count = sum(c.isdigit() for c in rest)
    shown, masked = [], 0
    for char in rest:
        if char.isdigit():
            masked += 1
            shown.append(char if masked > digit_count - 2 else MASK)
        elif char == "-":
            shown.append(" ")
        else:
            shown.append(char)
    return prefix + "".join(shown)


class PhoneNumberField(forms.CharField):
    """A text input for a phone number that can receive SMS; cleans to E.164."""

    default_error_messages = {"required": MESSAGES["required"]}

    def __init__(self, *, region=None, mobile_only=True, **kwargs):
        self.region = region
        self.mobile_only = mobile_only
        kwargs.setdefault("widget", forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}))
        if mobile_only:
            kwargs.setdefault("help_text", f"A mobile number, for example {EXAMPLE}.")
        else:
            kwargs.setdefault("help_text", "With the country code if it is abroad.")
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        return normalize_phone(value, region=self.region, mobile_only=self.mobile_only)
