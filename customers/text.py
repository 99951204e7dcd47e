"""How typed customer and contact text is compared and stored.

Newlines are stored as LF ("\\n"): browsers submit a textarea's newlines as CRLF, CSV
files bring either. An email address is compared with its domain in ASCII (IDNA) and
lower case: Chromium submits `post@bodø.example` from an email input as
`post@xn--bod-2na.example`, the same address.
"""


def lf(text):
    """`text` with every CRLF and lone CR as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def email_key(address):
    """An email address as compared for "changed": the local part as it is, the domain
    in ASCII (punycode) and lower case. Not for storing."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass  # not a valid IDN: compared as typed (the validator refuses it anyway)
    return f"{local}@{domain.lower()}"
