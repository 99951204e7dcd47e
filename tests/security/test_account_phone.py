"""The mobile phone number on the account security page: saved in E.164 (once confirmed
by the code texted to it), masked in the audit log, refused when it is not a phone
number."""

import json
import re

from accounts.models import User
from accounts.roles import Role
from security import sms
from security.phones import mask_phone
from tests.conftest import work_in
from tests.helpers import (
    ACCOUNT,
    actions,
    text,
)

# --- Phone number -------------------------------------------------------------------------


def confirm_with_texted_code(client):
    """Type the code texted to the new number (a new number is used only after it)."""
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1)
    return client.post(ACCOUNT, {"action": "confirm_phone", "code": code}, follow=True)


def test_a_norwegian_mobile_number_is_saved_in_e164(world, client):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a)

    client.post(ACCOUNT, {"phone": "912 34 567"})
    response = confirm_with_texted_code(client)

    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert "Your mobile phone number was saved." in text(response)
    assert User.objects.get(pk=user.pk).phone == "+4791234567"
    masked = mask_phone("+4791234567")
    assert masked.startswith("+47") and masked.endswith("67") and "\N{BULLET}" in masked
    assert f"On file: {masked}." in text(response)
    event = actions("account.phone.changed").get()
    assert event.actor == user
    assert event.data == {"old": "", "new": masked}

    client.post(ACCOUNT, {"phone": "+47 987 65 432"})
    confirm_with_texted_code(client)
    second = actions("account.phone.changed").order_by("-id").first()
    assert second.data == {"old": masked, "new": mask_phone("+4798765432")}
    logged = json.dumps([e.data for e in actions("account.phone.changed")], ensure_ascii=False)
    for secret in ("91234567", "912 34 567", "98765432", "987 65 432"):
        assert secret not in logged


def test_a_phone_number_that_is_not_one_is_refused(world, client):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a)

    response = client.post(ACCOUNT, {"phone": "abc"})

    assert response.status_code == 200
    assert "Enter a phone number such as +47 912 34 567." in text(response)
    assert User.objects.get(pk=user.pk).phone == ""
    assert not actions("account.phone.changed").exists()
