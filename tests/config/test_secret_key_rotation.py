"""Rotating SECRET_KEY: with the old key in SECRET_KEY_FALLBACKS (DJANGO_SECRET_KEY_FALLBACKS)
what was signed or keyed under it keeps working -- sessions, password-reset links, the
link-bound sessions of customer links and their form keys, backup codes, IP-challenge codes
-- and stops once the old key is removed (backup codes and challenge codes are hashes in the
database: they verify under the fallbacks too)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client, override_settings
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.roles import Role
from config.env import env_file_or_list
from config.settings import DEVELOPMENT_SECRET_KEY
from customers.models import CustomerLink
from security import allowlist, crypto, twofactor
from security.models import BackupCodeDevice, IpChallenge
from tests.config.test_settings_env import GOOD_PRODUCTION, manage
from tests.conftest import work_in
from tests.helpers import Book, add_document, make_link, url

OLD = "old-" + "o" * 60
NEW = "new-" + "n" * 60
ROTATED = override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD])
REMOVED = override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[])

pytestmark = pytest.mark.django_db


def signed_under_old_key(make):
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        return make()


def test_a_session_signed_in_under_the_old_key_stays_signed_in(world):
    admin = world.users[Role.ADMIN]
    active, idle = Client(), Client()
    signed_under_old_key(lambda: (work_in(active, admin, world.a), work_in(idle, admin, world.a)))

    with ROTATED:
        assert active.get("/audit/").status_code == 200
    with REMOVED:
        # Used during the rotation, the session was moved to the new key.
        assert active.get("/audit/").status_code == 200
        # Left unused until the old key was removed, it is over: sign in again.
        answer = idle.get("/audit/")
        assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


def reset_path(user):
    token = default_token_generator.make_token(user)
    return f"/accounts/password/reset/{urlsafe_base64_encode(force_bytes(user.pk))}/{token}/"


def test_a_password_reset_link_made_under_the_old_key_still_works(world):
    path = signed_under_old_key(lambda: reset_path(world.users[Role.ADMIN]))

    with ROTATED:
        page = Client().get(path, follow=True)
        assert 'name="new_password1"' in page.content.decode()
    with REMOVED:
        page = Client().get(path, follow=True)
        assert 'name="new_password1"' not in page.content.decode()


def open_document_link(world):
    book = Book(world)
    document = add_document(book.customer, name="contract.pdf")
    _, token = make_link(
        book.customer, CustomerLink.Kind.DOCUMENT, contact=book.kari, document=document
    )
    browser = Client()
    first = browser.get(url(token))
    clean = first["Location"]
    page = browser.get(clean)
    key = re.search(r'name="key" value="([0-9a-f]+)"', page.content.decode()).group(1)
    return browser, clean, key


def test_a_link_session_opened_under_the_old_key_still_works(world):
    browser, clean, key = signed_under_old_key(lambda: open_document_link(world))

    with ROTATED:
        assert browser.get(clean).status_code == 200
        download = browser.post(clean, {"key": key})
        assert download.status_code == 200
        assert download["Content-Type"] == "application/pdf"


def test_without_the_old_key_a_link_session_opened_under_it_is_over(world):
    browser, clean, key = signed_under_old_key(lambda: open_document_link(world))

    with REMOVED:
        assert browser.get(clean).status_code == 410
        assert browser.post(clean, {"key": key}).status_code in (403, 410)


def test_backup_codes_made_under_the_old_key_still_verify(world):
    user = world.users[Role.ADMIN]
    codes = signed_under_old_key(lambda: twofactor._make_backup_codes(user))
    device = BackupCodeDevice.objects.get(user=user)

    with REMOVED:
        assert not device.verify_token(codes[0])
    device.throttle_reset()
    with ROTATED:
        assert device.verify_token(codes[0])
        assert not device.verify_token(codes[0])  # still once only
    with ROTATED:
        fresh_codes = twofactor._make_backup_codes(user)
    device.throttle_reset()
    with REMOVED:  # made under the new key: removing the old one does not touch them
        assert device.verify_token(fresh_codes[0])


def test_an_ip_challenge_code_sent_under_the_old_key_still_verifies(world):
    now = timezone.now()
    user = world.users[Role.ADMIN]

    def challenge():
        made = IpChallenge.objects.create(
            user=user, entity=world.a, ip="203.0.113.5", session_key="s" * 32
        )
        made.code_hash = salted_hmac("security.ip-challenge", f"{made.pk}:123456").hexdigest()
        made.expires_at = now + timedelta(minutes=10)
        made.save()
        return made

    sent = signed_under_old_key(challenge)
    with REMOVED:
        assert allowlist.check_code(sent, "123456", request=None, now=now)[0] is False
    with ROTATED:
        assert allowlist.check_code(sent, "123456", request=None, now=now) == (True, "")


# --- How the fallbacks are configured ---------------------------------------------------


def test_fallbacks_are_read_comma_separated_or_one_per_line_from_a_file(tmp_path):
    assert env_file_or_list("DJANGO_SECRET_KEY_FALLBACKS", environ={}) == []
    environ = {"DJANGO_SECRET_KEY_FALLBACKS": f" {OLD} , {NEW} ,"}
    assert env_file_or_list("DJANGO_SECRET_KEY_FALLBACKS", environ=environ) == [OLD, NEW]
    keys = tmp_path / "fallbacks"
    keys.write_text(f"{OLD},with-a-comma\n\n{NEW}\n")
    environ = {"DJANGO_SECRET_KEY_FALLBACKS_FILE": str(keys)}
    assert env_file_or_list("DJANGO_SECRET_KEY_FALLBACKS", environ=environ) == [
        f"{OLD},with-a-comma",
        NEW,
    ]


def test_the_process_uses_the_fallbacks_it_is_given():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)",
        **{**GOOD_PRODUCTION, "DJANGO_SECRET_KEY_FALLBACKS": OLD},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == repr([OLD])


@pytest.mark.parametrize("fallbacks", ["too-short", f"{OLD},{DEVELOPMENT_SECRET_KEY}"])
def test_production_refuses_a_fallback_that_is_no_real_key_naming_the_variable(fallbacks):
    result = manage("check", **{**GOOD_PRODUCTION, "DJANGO_SECRET_KEY_FALLBACKS": fallbacks})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FALLBACKS entry" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreadable_fallbacks_file_stops_the_process_naming_it(tmp_path):
    missing = tmp_path / "nope"
    result = manage("check", DJANGO_SECRET_KEY_FALLBACKS_FILE=str(missing))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FALLBACKS_FILE=" in result.stderr
    assert "Traceback" not in result.stderr


def test_in_development_data_encrypted_under_the_old_key_stays_readable():
    """Without FIELD_ENCRYPTION_KEYS the encryption keys are derived from the secret key and
    its fallbacks; `rotate_encryption_keys` moves the data to the new key."""
    binding = crypto.Binding("customers_secret", "encrypted_body", 42, 7)
    with override_settings(FIELD_ENCRYPTION_KEYS=[]):
        value = signed_under_old_key(lambda: crypto.encrypt(b"the customer's secret", binding))
        with ROTATED:
            assert crypto.decrypt(value, binding) == b"the customer's secret"
            moved = crypto.rotate(value, binding)
        with REMOVED:
            with pytest.raises(crypto.DecryptionError):
                crypto.decrypt(value, binding)
            assert crypto.decrypt(moved, binding) == b"the customer's secret"
