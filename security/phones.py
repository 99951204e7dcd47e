"""Phone numbers that can receive the SMS validation codes.

Users type numbers in every local style ("912 34 567", "0047 912 34 567", "+46 70-123 45 67").
Everything that stores or sends a number goes through `normalize_phone`, which reads the
number with Google's libphonenumber rules (the `phonenumbers` package), refuses what cannot
be a number or is not a mobile number, and returns one canonical form: E.164
("+4791234567"). That is the form the SMS provider expects and the form to compare numbers in.
`mask_phone` is for showing a number back to a user ("a code was sent to +47 •• •• •• 67")
without revealing it on screen.

Codes go only to mobile numbers (SMS pumping: premium-rate, VoIP and forwarding numbers are
where fraudsters make texts pay), and only in the countries an entity allows
(`SecurityPolicy.sms_countries`, ISO 3166 codes such as "NO"): `country_of`,
`check_country` and the settings form's `CountryCodesField` work with those codes.
"""

import re

import phonenumbers
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, ValidationResult

EXAMPLE = "+47 912 34 567"
MASK = "\N{BULLET}"

# The only number types that receive codes: MOBILE, and FIXED_LINE_OR_MOBILE where
# libphonenumber cannot tell the two apart (the United States, Canada). Every other type is
# refused, also those that may forward texts to a handset (VoIP, personal numbers, pagers):
# a fraudster can rent them by the thousand.
SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# What a refused number is, for the message; types not named here are told NOT_MOBILE.
REFUSED_KINDS = {
    PhoneNumberType.VOIP: "an internet telephony (VoIP) number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.UAN: "a company number (UAN)",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
}

# Names of the countries admins are most likely to allow; other codes are shown as they
# are ("JP"). phonenumbers' own country names (its geocoder) cost about 100 MB per process.
COUNTRY_NAMES = {
    "AT": "Austria",
    "AX": "Åland",
    "BE": "Belgium",
    "CA": "Canada",
    "CH": "Switzerland",
    "DE": "Germany",
    "DK": "Denmark",
    "EE": "Estonia",
    "ES": "Spain",
    "FI": "Finland",
    "FO": "Faroe Islands",
    "FR": "France",
    "GB": "United Kingdom",
    "GL": "Greenland",
    "IE": "Ireland",
    "IS": "Iceland",
    "IT": "Italy",
    "LT": "Lithuania",
    "LV": "Latvia",
    "NL": "Netherlands",
    "NO": "Norway",
    "PL": "Poland",
    "PT": "Portugal",
    "SE": "Sweden",
    "SJ": "Svalbard",
    "US": "United States",
}

MESSAGES = {
    "required": "Enter a phone number.",
    "unparseable": f"Enter a phone number such as {EXAMPLE}.",
    "too_short": "This phone number is too short. Check the digits and the country code.",
    "too_long": "This phone number is too long. Check the digits and the country code.",
    "invalid": "This is not a valid phone number. Check the digits and the country code.",
    "not_mobile": "This number cannot receive text messages. Enter a mobile phone number.",
    "not_mobile_kind": "This is {kind}: codes are sent only to mobile numbers. "
    "Enter a mobile phone number.",
    "country": "Codes can be sent only to mobile numbers from {allowed}, and this number is "
    "from {country}. Enter a mobile number from {allowed}, or ask an administrator to allow "
    "{country} under Settings -> Security.",
}


def _error(code, **params):
    return ValidationError(MESSAGES[code].format(**params), code=code)


def _parse(raw, region):
    try:
        return phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except NumberParseException:
        raise _error("unparseable") from None


def normalize_phone(raw, region=None, mobile_only=True):
    """Return `raw` as an E.164 string ("+4791234567") or raise ValidationError.

    Numbers without a "+country" prefix are read as numbers of `region` (an ISO 3166
    country code, default settings.PHONE_DEFAULT_REGION). With `mobile_only` (numbers that
    will get SMS) only mobile numbers are accepted (`SMS_TYPES`).
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
    if mobile_only:
        kind = phonenumbers.number_type(number)
        if kind in REFUSED_KINDS:
            raise _error("not_mobile_kind", kind=REFUSED_KINDS[kind])
        if kind not in SMS_TYPES:
            raise _error("not_mobile")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


# --- Countries ------------------------------------------------------------------------------


def country_of(e164):
    """The ISO 3166 code of the country a number belongs to ("+4791234567" -> "NO"), or ""
    when it cannot be told."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or ""
    except NumberParseException:
        return ""


def country_name(code):
    """ "NO" -> "Norway (NO)"; a code without a known name stays as it is."""
    name = COUNTRY_NAMES.get(code)
    return f"{name} ({code})" if name else code


def countries_text(codes):
    """["NO", "SE"] -> "Norway (NO) or Sweden (SE)"."""
    names = [country_name(code) for code in codes]
    if len(names) <= 1:
        return "".join(names) or "no country"
    return f"{', '.join(names[:-1])} or {names[-1]}"


def check_country(e164, countries):
    """Raise ValidationError unless the number `e164` is from one of `countries`."""
    country = country_of(e164)
    if country not in countries:
        raise _error(
            "country",
            allowed=countries_text(countries),
            country=country_name(country) if country else "an unknown country",
        )


def parse_countries(text):
    """Country codes typed by an admin ("no, SE;dk") as a sorted list of distinct ISO 3166
    codes that phonenumbers knows, or ValidationError naming the first wrong one."""
    codes = []
    for word in re.split(r"[\s,;]+", text or ""):
        if not word:
            continue
        code = word.upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(
                f"“{word[:20]}” is not a country code. Use two-letter codes (ISO 3166) such "
                "as NO, SE or DK, separated by commas.",
                code="country",
            )
        codes.append(code)
    return sorted(set(codes))


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


class CountryCodesInput(forms.TextInput):
    """Shows a list of codes as "NO, SE"; several values posted under the name count
    together (["NO", "SE"] as well as "NO, SE")."""

    def format_value(self, value):
        if isinstance(value, list | tuple):
            value = ", ".join(value)
        return super().format_value(value)

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else data.get(name)
        if isinstance(values, list | tuple):
            return ", ".join(v for v in values if isinstance(v, str))
        return values


class CountryCodesField(forms.CharField):
    """ISO 3166 country codes typed as "NO, SE"; cleans to a sorted list. Left empty, it
    cleans to `empty_codes()` (the default countries) rather than to no country at all,
    which would stop every code."""

    widget = CountryCodesInput

    def __init__(self, *, empty_codes=list, **kwargs):
        self.empty_codes = empty_codes
        kwargs.setdefault("max_length", 1000)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return parse_countries(text) or list(self.empty_codes())

    def validate(self, value):
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")

    def run_validators(self, value):
        # max_length counts the typed text (checked in clean), not the list it becomes.
        return None

    def clean(self, value):
        if isinstance(value, str) and self.max_length and len(value) > self.max_length:
            raise ValidationError(
                f"Enter at most {self.max_length} characters of country codes.", code="max_length"
            )
        return super().clean(value)
