"""A rule over the code: a value named like a code, token, nonce, secret, signature or
digest is never compared with `==` or `!=` (a comparison that stops at the first differing
character tells an attacker how much of a guess was right). Such values go through
`django.utils.crypto.constant_time_compare` or are looked up by their hash. The few
comparisons that are not about secrets are listed below, each with its reason."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "accounts", "security", "customers", "documents", "consent", "portal", "config")
# The last word of a name (`link.token_hash` -> "hash", `entered_code` -> "code").
SECRET_WORDS = {
    "code", "codes", "token", "tokens", "nonce", "nonces", "secret", "secrets",
    "signature", "signatures", "otp", "digest", "hmac", "mac", "hash", "hashes",
    "password",
}  # fmt: skip

# Names that end like a secret but are public numbers (an HTTP or SMTP status, a process's
# exit status).
NOT_SECRETS = {"status_code", "smtp_code", "exit_code", "returncode"}

# (file, the comparison as written) -> why it is not a secret comparison. Reviewed.
ALLOWED = {
    (
        "customers/csv_import.py",
        "plan.signature() != expected",
    ): "the import preview's fingerprint of the rows it showed; the user's own session holds it",
    (
        "customers/csv_import.py",
        "before.get(row.line) != row.codes",
    ): "consent purpose codes of a CSV row (slugs such as invoice_email), not credentials",
    (
        "portal/management/commands/demo_data.py",
        "p.code == REMINDER_EMAIL",
    ): "a consent purpose's code (a slug) in the demo data",
}


def last_word(node):
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            name = key.value
        else:
            return last_word(node.value)
    elif isinstance(node, ast.Call):
        return last_word(node.func)
    else:
        return None
    if name.lower() in NOT_SECRETS:
        return None
    return re.split(r"[_\W]+", name.lower())[-1]


def secret_comparisons(source):
    """The `==`/`!=` comparisons in `source` with a side named like a secret."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            if any(last_word(side) in SECRET_WORDS for side in [node.left, *node.comparators]):
                found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize(
    "source",
    [
        "ok = entered_code == challenge.code",
        "if link.token_hash != hashed: pass",
        "same = request.POST['token'] == expected",
        "bad = signature != compute_signature(body)",
        "x = make_otp() == typed",
    ],
)
def test_the_rule_catches_a_secret_compared_with_equals(source):
    assert secret_comparisons(source)


@pytest.mark.parametrize(
    "source",
    [
        "ok = constant_time_compare(entered_code, challenge.code)",
        "row = Link.objects.filter(token_hash=token_hash(token)).first()",
        "same = p.ip_code_recipient == CodeRecipient.ADMINS",
        "n = len(codes) == 10",
        "failed = response.status_code == 500",
    ],
)
def test_the_rule_leaves_constant_time_and_hash_lookups_alone(source):
    assert not secret_comparisons(source)


def test_no_secret_is_compared_with_equals_in_the_product():
    found, seen = [], set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            relative = path.relative_to(ROOT).as_posix()
            for line, text in secret_comparisons(path.read_text()):
                if (relative, text) in ALLOWED:
                    seen.add((relative, text))
                else:
                    found.append(f"{relative}:{line}: {text}")
    assert not found, "use constant_time_compare or a hash lookup:\n" + "\n".join(found)
    # A reviewed exception that no longer exists leaves the list.
    assert seen == set(ALLOWED), f"stale exceptions: {sorted(set(ALLOWED) - seen)}"
