"""When two-factor authentication is required and who may lift it: a required user must
enrol first and cannot turn it off (one not required can, with a code), users the
policy does not reach are not asked; the reset by an admin (with a reason, only for
accounts the admin fully administers); and the switch on Settings -> Security."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Membership, User, UserSession
from accounts.roles import Role
from security import twofactor
from security.models import (
    BackupCode,
    BackupCodeDevice,
    EncryptedTOTPDevice,
    SecurityPolicy,
)
from security.selectors import effective_policy_for_user, users_in_scope
from security.settings_forms import ENTITY_FIELDS
from tests.conftest import make_user, work_in
from tests.helpers import (
    ACCOUNT,
    BACKUP,
    REMOVE,
    SETUP,
    SETUP_REQUIRED,
    VERIFY,
    actions,
    code_at,
    enter_code,
    give_authenticator,
    pending_device,
    shown_backup_codes,
    sign_in,
    signed_out,
    text,
    work_in_verified,
    wrong_code,
)


def policy_data(policy, **changes):
    """The Settings -> Security form as posted: the policy's values, with `changes`."""
    data = {}
    for name in ENTITY_FIELDS:
        value = changes.get(name, getattr(policy, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    return data


# --- When the policy requires 2FA ---------------------------------------------------------


@pytest.fixture
def required(world):
    SecurityPolicy.objects.create(entity=world.a, require_2fa=True)
    return world


def test_a_required_user_without_an_authenticator_must_enrol_first(required, client, clock):
    user = required.users[Role.GUEST]
    sign_in(client, user)

    for url in ("/customers/", "/", ACCOUNT, VERIFY, "/audit/", "/settings/security/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == SETUP, url
    for url in (BACKUP, REMOVE, ACCOUNT, "/switch-entity/"):
        assert client.post(url, {"phone": "912 34 567"})["Location"] == SETUP, url
    assert User.objects.get(pk=user.pk).phone == ""
    page = client.get("/", follow=True)
    assert page.redirect_chain == [(SETUP, 302)]
    assert SETUP_REQUIRED in text(page)
    assert "Log out instead" in text(page) and ">Cancel</a>" not in text(page)

    response = client.post(SETUP, {"code": code_at(pending_device(user))})

    assert len(shown_backup_codes(response)) == 10
    # "Continue" goes to the page first asked for.
    assert re.search(r'<a class="button" href="/customers/">Continue</a>', text(response))
    for url in ("/customers/", "/", ACCOUNT):
        assert client.get(url).status_code == 200, url
    assert actions("auth.2fa.enabled", actor=user).exists()


def test_the_next_sign_in_of_a_required_user_asks_for_the_code(required, client, clock):
    user = required.users[Role.GUEST]
    device, _ = give_authenticator(user)

    sign_in(client, user)

    assert client.get("/")["Location"] == VERIFY
    assert client.get(SETUP)["Location"] == VERIFY  # no new authenticator without the code
    assert enter_code(client, code_at(device))["Location"] == "/"


@pytest.mark.parametrize("who", ["outsider", "b_admin"])
def test_users_the_policy_does_not_reach_are_not_asked_to_enrol(required, client, who):
    user = getattr(required, who)
    sign_in(client, user)

    assert client.get("/").status_code == 200
    assert client.get(ACCOUNT).status_code == 200


def test_a_required_user_cannot_turn_it_off(
    required, client, clock, django_capture_on_commit_callbacks
):
    user = required.users[Role.GUEST]
    device, _ = give_authenticator(user)
    work_in_verified(client, user, required.a, device)
    assert "Your organisation requires it, so it cannot be turned off." in text(client.get(ACCOUNT))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(REMOVE, {"code": code_at(device)}, follow=True)

    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert (
        "Your organisation requires two-factor authentication, so it cannot be turned off."
        in text(response)
    )
    assert twofactor.has_second_factor(user)
    assert BackupCodeDevice.objects.filter(user=user).exists()
    assert not actions("auth.2fa.disabled").exists()
    assert mail.outbox == []


def test_a_user_not_required_can_turn_it_off_with_a_code(
    world, client, clock, django_capture_on_commit_callbacks
):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    work_in_verified(client, user, world.a, device)

    refused = client.post(REMOVE, {"code": wrong_code(device)}, follow=True)
    assert "That code is not right; two-factor authentication stays on." in text(refused)
    assert twofactor.has_second_factor(user)

    clock.shift(2)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(REMOVE, {"code": code_at(device)}, follow=True)

    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert "Two-factor authentication is off." in text(response)
    assert not EncryptedTOTPDevice.objects.filter(user=user).exists()
    assert not BackupCodeDevice.objects.filter(user=user).exists()
    event = actions("auth.2fa.disabled").get()
    assert event.actor == user and event.target_id == str(user.pk)
    assert [m.subject for m in mail.outbox] == ["Two-factor authentication is off"]
    assert mail.outbox[0].to == [user.email]
    assert client.get("/").status_code == 200  # still signed in
    sign_in(other := Client(), user)
    assert other.get("/").status_code == 200  # no code asked any more


# --- Reset by an admin --------------------------------------------------------------------


def reset_url(user):
    return f"/settings/users/{user.pk}/reset-2fa/"


def test_an_admin_resets_2fa_with_a_reason(world, client, django_capture_on_commit_callbacks):
    admin, guest = world.users[Role.ADMIN], world.users[Role.GUEST]
    give_authenticator(guest)
    guest_session = work_in(Client(), guest, world.a)
    work_in(client, admin, world.a)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reset_url(guest), {"reason": "  Lost phone, ticket 4711 "}, follow=True
        )

    assert response.redirect_chain == [("/settings/users/", 302)]
    assert f"Two-factor authentication of {guest.email} was reset" in text(response)
    assert not EncryptedTOTPDevice.objects.filter(user=guest).exists()
    assert not BackupCodeDevice.objects.filter(user=guest).exists()
    assert not BackupCode.objects.filter(device__user=guest).exists()
    assert signed_out(guest_session)
    assert not UserSession.objects.filter(user_id=guest.pk).exists()
    event = actions("auth.2fa.reset").get()
    assert event.actor == admin
    assert event.target_id == str(guest.pk)
    assert event.entity == world.a
    assert event.data == {"reason": "Lost phone, ticket 4711"}
    assert [m.to for m in mail.outbox] == [[guest.email]]
    assert mail.outbox[0].subject == "Two-factor authentication is off"
    assert admin.email in mail.outbox[0].body
    assert client.get("/").status_code == 200  # the admin stays signed in


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_reset_without_a_reason_is_refused(
    world, client, reason, django_capture_on_commit_callbacks
):
    admin, guest = world.users[Role.ADMIN], world.users[Role.GUEST]
    give_authenticator(guest)
    guest_session = work_in(Client(), guest, world.a)
    work_in(client, admin, world.a)

    data = {} if reason is None else {"reason": reason}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reset_url(guest), data, follow=True)

    assert "Say why two-factor authentication is being reset." in text(response)
    assert twofactor.has_second_factor(guest)
    assert BackupCodeDevice.objects.get(user=guest).remaining() == 10
    assert not signed_out(guest_session)
    assert not actions("auth.2fa.reset").exists()
    assert mail.outbox == []


@pytest.mark.parametrize("admin", ["b_admin", "outsider"])
def test_an_admin_of_another_entity_gets_404(world, client, admin):
    guest = world.users[Role.GUEST]
    give_authenticator(guest)
    other = getattr(world, admin)
    entity = world.b if admin == "b_admin" else world.c
    work_in(client, other, entity)

    assert client.post(reset_url(guest), {"reason": "Lost phone"}).status_code == 404
    assert twofactor.has_second_factor(guest)
    assert not actions("auth.2fa.reset").exists()


def test_an_entity_admin_cannot_reset_the_2fa_of_someone_who_also_works_elsewhere(world, client):
    """The main admin reaches both entities of the access: an admin of one of them must not
    lower the protection of that account (nor of a user who is also a member elsewhere)."""
    admin = world.users[Role.ADMIN]
    both = make_user("both@acme.example")
    Membership.objects.create(user=both, entity=world.a, role=Role.GUEST)
    Membership.objects.create(user=both, entity=world.b, role=Role.GUEST)
    main_device, _ = give_authenticator(world.main_admin)
    give_authenticator(both)
    main_session = work_in_verified(Client(), world.main_admin, world.a, main_device)
    work_in(client, admin, world.a)

    page = text(client.get("/settings/users/"))
    assert "<td>Main admin</td>" in page and "<td>Guest</td>" in page  # their role here
    assert page.count("Reset 2FA") == 0  # neither row offers it
    assert page.count("only someone who administers all of them can act on this account") == 2
    for person in (world.main_admin, both):
        response = client.post(reset_url(person), {"reason": "Lost phone"}, follow=True)
        assert "also works in entities you do not administer" in text(response)
        assert twofactor.has_second_factor(person)
    assert not signed_out(main_session)
    assert not actions("auth.2fa.reset").exists()

    # The main admin administers every entity they reach, so they can.
    response = main_session.post(reset_url(both), {"reason": "Lost phone"}, follow=True)
    assert f"Two-factor authentication of {both.email} was reset" in text(response)


@pytest.mark.parametrize(
    "role", [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]
)
def test_staff_roles_cannot_reset_2fa(world, client, role):
    target = make_user("target@acme.example")
    Membership.objects.create(user=target, entity=world.a, role=Role.GUEST)
    give_authenticator(target)
    work_in(client, world.users[role], world.a)

    assert client.post(reset_url(target), {"reason": "Lost phone"}).status_code == 403
    assert twofactor.has_second_factor(target)
    assert not actions("auth.2fa.reset").exists()


# --- Settings -> Security -----------------------------------------------------------------


def test_an_entity_admin_requires_2fa(world, client):
    admin = world.users[Role.ADMIN]
    work_in(client, admin, world.a)
    page = client.get("/settings/security/")
    assert "Require two-factor authentication" in text(page)
    policy = page.context["form"].instance

    # Nobody of the entity has an authenticator yet: saving asks to confirm first.
    ask = client.post("/settings/security/", policy_data(policy, require_2fa=True))
    assert ask.status_code == 200
    without = users_in_scope(entity=world.a).count()  # its members and the main admin
    assert (
        f"{without} users without an authenticator app must set one up before they can go on "
        "working."
    ) in text(ask)
    assert not SecurityPolicy.objects.get(entity=world.a).require_2fa
    response = client.post(
        "/settings/security/", {**policy_data(policy, require_2fa=True), "confirmed": "yes"}
    )

    assert response.status_code == 302
    assert SecurityPolicy.objects.get(entity=world.a).require_2fa
    event = actions("security.settings.changed").get()
    assert event.actor == admin and event.entity == world.a
    assert event.data == {"level": "entity-level", "changes": {"require_2fa": [False, True]}}
    # The admin is a user of the entity too: their own next page is the enrolment.
    after = client.get(response["Location"], follow=True)
    assert after.redirect_chain == [(SETUP, 302)]
    assert "Saved the entity-level policy. Two-factor authentication required: on." in text(after)
    assert SETUP_REQUIRED in text(after)


def test_an_entity_cannot_drop_2fa_the_multi_level_policy_requires(world, client):
    """Unticking the entity's own box means "inherit" (issue 18, item 9): the save goes
    through, and the multi-level requirement still applies to every user of the entity."""
    SecurityPolicy.objects.create(group=world.group, require_2fa=True)
    policy = SecurityPolicy.objects.create(entity=world.a, require_2fa=True)
    admin = world.users[Role.ADMIN]
    device, _ = give_authenticator(admin)
    work_in_verified(client, admin, world.a, device)

    response = client.post("/settings/security/", policy_data(policy, require_2fa=False))

    assert response.status_code == 302
    assert not SecurityPolicy.objects.get(pk=policy.pk).require_2fa
    for user in (admin, world.users[Role.GUEST]):
        rule = effective_policy_for_user(user).require_2fa
        assert rule.value is True and rule.set_by == (f"{world.group.name} (multi-level)",)
    # A user of the entity without an authenticator is still sent to enrolment.
    guest = Client()
    work_in(guest, world.users[Role.GUEST], world.a)
    assert guest.get("/customers/").url.startswith("/account/2fa/setup/")
