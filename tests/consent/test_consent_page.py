"""The public consent page a contact opens from the emailed link (no account; a signed
token that expires with the entity's link lifetime): what it shows, saving choices as
self-service events, the CSRF check as browsers submit it, a policy changed meanwhile,
pages left open by staff or the contact (neither undoes the other's newer answer), and
every way a link stops working (tampered, another kind, withdrawn, expired, the
customer anonymised, the contact deleted)."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent import services
from consent.anonymisation import anonymise
from consent.models import (
    ConsentEvent,
    ConsentSource,
    ConsentState,
)
from customers.models import ContactPerson
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import (
    DEFAULT_NAMES,
    add_processor,
    assert_private,
    by_name,
    choices,
    consent_url,
    events,
    make_contact,
    set_link_days,
    set_privacy,
    states,
)

NOW = "2026-06-01 12:00Z"


def link_url(contact):
    return f"/c/{services.make_link_token(contact)}/"


# --- The self-service page -----------------------------------------------------------------------


@pytest.fixture
def linked(world):
    """A contact of entity a with a privacy policy and a processor, and its link."""
    contact = make_contact(world.a)
    set_privacy(world.a, version="v1")
    add_processor(world.a)
    add_processor(world.b, name="Svensk Post AB")
    return contact


def test_opening_the_link_shows_the_page_and_changes_nothing(world, client, linked):
    response = client.get(link_url(linked), follow=True)

    assert response.status_code == 200
    content = response.content.decode()
    assert "How may Acme Norge AS contact you?" in content
    assert "Hello Kari Nordmann." in content
    assert 'href="https://acme.example/privacy"' in content and "(version v1)" in content
    assert "Mailfabrikken AS" in content and "Svensk Post AB" not in content
    for name in DEFAULT_NAMES:
        assert name in content
    assert 'name="policy_version" value="v1"' in content
    assert_private(response)
    with system_code():
        assert not ConsentEvent.objects.exists()
        assert not ConsentState.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="consent.").exists()


def test_saving_on_the_page_writes_self_service_events(world, client, linked):
    url = link_url(linked)
    data = {
        "policy_version": "v1",
        **choices(world.a, "Newsletter", "Reminders by SMS", contact=linked),
    }

    response = client.post(
        url, data, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Mozilla/5.0 (Test) Firefox/140"
    )

    assert response.status_code == 200
    assert "Your choices were saved. Thank you." in response.content.decode()
    assert_private(response)
    written = events(linked)
    assert len(written) == len(DEFAULT_NAMES)
    for event in written:
        assert event.source == ConsentSource.SELF_SERVICE
        assert event.actor is None
        assert event.ip == "198.51.100.7"
        assert event.user_agent == "Mozilla/5.0 (Test) Firefox/140"
        assert event.privacy_policy_version == "v1"
        assert event.old_value is None
    assert states(linked) == {
        name: name in {"Newsletter", "Reminders by SMS"} for name in DEFAULT_NAMES
    }
    # The page shows what was saved.
    assert (
        len(re.findall(r'type="checkbox" name="purpose_\d+" checked', response.content.decode()))
        == 2
    )

    again = client.post(
        url, {"policy_version": "v1", **choices(world.a, "Reminders by SMS", contact=linked)}
    )
    assert again.status_code == 200
    assert [(e.purpose.name, e.old_value, e.new_value) for e in events(linked)[5:]] == [
        ("Newsletter", True, False)
    ]


@pytest.mark.parametrize(
    "origin",
    [
        "http://testserver",
        "null",
    ],
    ids=["same-origin", "null-as-browsers-send-under-no-referrer"],
)
def test_the_form_passes_the_csrf_check_as_a_browser_submits_it(world, linked, origin):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(link_url(linked), follow=True)
    assert page["Referrer-Policy"] == "no-referrer"
    # The page's own form key: the link-bound session's credential (no CSRF cookie).
    key = re.search(r'name="key" value="([^"]+)"', page.content.decode())[1]

    response = browser.post(
        page.wsgi_request.path,
        {
            "key": key,
            "policy_version": "v1",
            **choices(world.a, "Newsletter", contact=linked),
        },
        HTTP_ORIGIN=origin,
    )

    assert response.status_code == 200
    assert "Your choices were saved. Thank you." in response.content.decode()
    assert len(events(linked)) == len(DEFAULT_NAMES)


def test_a_policy_changed_while_the_page_was_open_changes_nothing(world, client, linked):
    url = link_url(linked)
    assert 'value="v1"' in client.get(url, follow=True).content.decode()
    set_privacy(world.a, version="v2")

    response = client.post(
        url, {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "The privacy policy changed while the page was open." in content
    assert "Your choices were saved" not in content
    assert 'name="policy_version" value="v2"' in content
    assert events(linked) == [] and states(linked) == {}

    saved = client.post(
        url, {"policy_version": "v2", **choices(world.a, "Newsletter", contact=linked)}
    )
    assert "Your choices were saved" in saved.content.decode()
    assert {e.privacy_policy_version for e in events(linked)} == {"v2"}
    # The ticks sent with the old version were shown again, not dropped.
    newsletter = by_name(world.a)["Newsletter"]
    assert f'name="purpose_{newsletter.pk}" checked' in content


# --- Pages left open ----------------------------------------------------------------------


def test_a_staff_page_left_open_does_not_undo_the_contacts_newer_choice(world, client, linked):
    """Staff open the consent page; meanwhile the contact withdraws the newsletter on their
    own page; staff then tick phone calls only. The withdrawal stands."""
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            linked,
            {p: p.name == "Newsletter" for p in names.values()},
            source=ConsentSource.IMPORT,
        )
    staff_page = choices(world.a, "Newsletter", "Phone calls", contact=linked)  # loaded now
    customer = client.post(
        link_url(linked), {"policy_version": "v1", **choices(world.a, contact=linked)}
    )
    assert "Your choices were saved" in customer.content.decode()
    assert states(linked)["Newsletter"] is False

    admin = work_in(Client(), world.users[Role.ADMIN], world.a)
    saved = admin.post(consent_url(linked), staff_page, follow=True)

    assert "Saved 1 change(s)" in saved.content.decode()
    assert states(linked)["Newsletter"] is False
    assert states(linked)["Phone calls"] is True
    last = events(linked)[-1]
    assert (last.purpose.name, last.new_value, last.source) == (
        "Phone calls",
        True,
        ConsentSource.STAFF,
    )


def test_a_box_both_answered_differently_is_not_saved_over_the_other_answer(world, client, linked):
    """Nothing recorded; staff open the page; the contact answers on their own page (yes to
    the newsletter, no to the rest); staff then tick phone calls and the newsletter."""
    names = by_name(world.a)
    admin = work_in(client, world.users[Role.ADMIN], world.a)
    staff_page = choices(world.a, "Phone calls", "Newsletter", contact=linked)
    Client().post(
        link_url(linked), {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
    )
    before = len(events(linked))

    conflict = admin.post(consent_url(linked), staff_page)

    content = conflict.content.decode()
    assert conflict.status_code == 200
    assert "While this page was open, someone else changed: Phone calls." in content
    assert "nothing was saved" in content
    assert len(events(linked)) == before
    assert states(linked)["Phone calls"] is False
    # Phone calls shows the contact's answer; the newsletter keeps the tick made here.
    assert f'name="purpose_{names["Phone calls"].pk}" checked' not in content
    assert re.search(f'name="was_{names["Phone calls"].pk}" value="off[.]\\d+"', content)
    assert f'name="purpose_{names["Newsletter"].pk}" checked' in content

    # Saving again, having looked, ticks phone calls over the contact's "no".
    resubmit = dict(re.findall(r'name="(was_\d+)" value="([\w.]+)"', content))
    resubmit.update({f"purpose_{names[n].pk}": "on" for n in ("Phone calls", "Newsletter")})
    again = admin.post(consent_url(linked), resubmit, follow=True)
    assert "Saved 1 change(s)" in again.content.decode()
    assert states(linked)["Phone calls"] is True and states(linked)["Newsletter"] is True


def test_a_box_changed_and_changed_back_meanwhile_still_clashes(world, client, linked):
    """The ledger, not the value, tells whether someone answered since the page loaded."""
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(linked, {names["Phone calls"]: True}, source=ConsentSource.STAFF)
    admin = work_in(client, world.users[Role.ADMIN], world.a)
    staff_page = choices(world.a, contact=linked)  # shows phone calls granted; unticked here
    for granted in (False, True):  # the contact withdraws, then grants again
        with tenant_scope(world.a):
            services.set_consents(
                linked, {names["Phone calls"]: granted}, source=ConsentSource.SELF_SERVICE
            )

    conflict = admin.post(consent_url(linked), staff_page)

    assert "While this page was open, someone else changed: Phone calls." in (
        conflict.content.decode()
    )
    assert states(linked)["Phone calls"] is True


def test_after_a_clash_every_box_not_changed_here_shows_its_answer_now(world, client, linked):
    names = by_name(world.a)
    with tenant_scope(world.a):
        services.set_consents(
            linked, {names["Invoices and reminders by email"]: True}, source=ConsentSource.IMPORT
        )
    admin = work_in(client, world.users[Role.ADMIN], world.a)
    # Loaded with email granted; phone calls ticked here.
    staff_page = choices(world.a, "Invoices and reminders by email", "Phone calls", contact=linked)
    Client().post(  # meanwhile: email withdrawn, SMS granted, the rest answered "no"
        link_url(linked),
        {"policy_version": "v1", **choices(world.a, "Reminders by SMS", contact=linked)},
    )

    content = admin.post(consent_url(linked), staff_page).content.decode()

    assert "someone else changed: Phone calls." in content
    ticked = {name for name, p in names.items() if f'name="purpose_{p.pk}" checked' in content}
    assert ticked == {"Reminders by SMS"}  # as stored now; phone calls shows the "no"


def test_the_contacts_page_left_open_does_not_undo_a_staff_change(world, client, linked):
    names = by_name(world.a)
    customer_page = choices(world.a, contact=linked)  # nothing recorded yet: all "none"
    with tenant_scope(world.a):
        services.set_consents(linked, {names["Phone calls"]: True}, source=ConsentSource.STAFF)

    client.post(link_url(linked), {"policy_version": "v1", **customer_page})

    assert states(linked)["Phone calls"] is True  # not reset by the box left unticked
    assert states(linked)["Newsletter"] is False  # a first answer is still recorded


def dead(response, message):
    assert response.status_code == 410
    content = response.content.decode()
    assert f"<h1>{message}</h1>" in content
    for data in ["Kari Nordmann", "kari@fjellvik.example", "Fjellvik", "Acme Norge AS", "Anonym"]:
        assert data not in content
    assert "<form" not in content
    assert_private(response)
    return content


def tampered_tokens(token):
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return {
        "changed": flipped,
        "truncated": token[:-3],
        "extended": token + "x",
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("kind", ["changed", "truncated", "extended", "garbage"])
def test_a_tampered_link_shows_a_clear_page(world, client, linked, kind):
    token = tampered_tokens(services.make_link_token(linked))[kind]

    dead(client.get(f"/c/{token}/"), "This link is not valid.")
    dead(
        client.post(
            f"/c/{token}/",
            {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)},
        ),
        "This link is not valid.",
    )
    assert events(linked) == []


def test_a_link_of_another_kind_does_not_open_a_consent_page(world, client, linked):
    from customers.links import create_link
    from customers.models import CustomerLink

    with system_code():
        _, token = create_link(
            customer=linked.customer, kind=CustomerLink.Kind.INTERACTIVE, contact=linked
        )
    dead(client.get(f"/c/{token}/"), "This link is not valid.")


def test_each_link_reaches_only_its_own_contact(world, client, linked):
    theirs = make_contact(world.b, name="Sven Svensson", email="sven@example.se")
    mine = client.get(link_url(linked), follow=True).content.decode()
    assert "Kari Nordmann" in mine and "Sven" not in mine
    assert "Hello Sven Svensson." in client.get(link_url(theirs), follow=True).content.decode()


def test_the_database_keeps_only_the_hash_and_logs_each_use(world, client, linked):
    from customers.models import CustomerLink, LinkUse

    token = services.make_link_token(linked)
    client.get(f"/c/{token}/", HTTP_USER_AGENT="Mail scanner 1.0")
    with system_code():
        link = CustomerLink.objects.get(kind=CustomerLink.Kind.CONSENT)
        [use] = LinkUse.objects.filter(link=link)
    assert token not in link.token_hash
    assert use.user_agent == "Mail scanner 1.0"
    assert events(linked) == []  # a visit is logged, but changes no consent


def test_a_consent_token_at_the_document_address_is_sent_to_its_page_uncounted(
    world, client, linked
):
    from customers.models import CustomerLink, LinkUse

    token = services.make_link_token(linked)
    response = client.get(f"/l/{token}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/c/open/")  # the consent page's clean URL
    assert token not in response["Location"]
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    with system_code():
        link = CustomerLink.objects.get(kind=CustomerLink.Kind.CONSENT)
        # Opening is logged, and spends nothing.
        assert [u.counted for u in LinkUse.objects.filter(link=link)] == [False]
    assert "Hello Kari Nordmann." in client.get(response["Location"]).content.decode()
    with system_code():
        assert LinkUse.objects.filter(link=link).count() == 1
        assert CustomerLink.objects.get(pk=link.pk).uses == 0


def test_a_withdrawn_consent_link_stops_working(world, client, linked):
    from customers.links import revoke
    from customers.models import CustomerLink

    url = link_url(linked)
    with system_code():
        revoke(CustomerLink.objects.get(kind=CustomerLink.Kind.CONSENT), actor=None)
    dead(client.get(url, follow=True), "This link was withdrawn.")


@pytest.mark.parametrize(
    ("days", "seconds_after", "valid"),
    [
        (30, 30 * 86400 - 1, True),
        (30, 30 * 86400 + 1, False),
        (7, 7 * 86400 - 1, True),
        (7, 7 * 86400 + 1, False),
    ],
    ids=["30d-just-before", "30d-just-after", "7d-just-before", "7d-just-after"],
)
def test_the_link_expires_after_the_entitys_interactive_link_days(
    world, client, linked, days, seconds_after, valid
):
    if days != 30:
        set_link_days(world.a, days)
    with time_machine.travel(NOW, tick=False) as traveller:
        url = link_url(linked)
        traveller.shift(timedelta(seconds=seconds_after))
        response = client.get(url, follow=True)
        posted = client.post(
            url, {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
        )
    if valid:
        assert response.status_code == 200
        assert "Hello Kari Nordmann." in response.content.decode()
        assert "Your choices were saved" in posted.content.decode()
        assert len(events(linked)) == len(DEFAULT_NAMES)
    else:
        dead(response, "This link has expired.")
        dead(posted, "This link has expired.")
        assert events(linked) == []


def test_shortening_the_link_lifetime_expires_existing_links(world, client, linked):
    with time_machine.travel(NOW, tick=False) as traveller:
        url = link_url(linked)
        traveller.shift(timedelta(days=10))
        assert client.get(url, follow=True).status_code == 200
        set_link_days(world.a, 7)
        dead(client.get(url, follow=True), "This link has expired.")
        # Lengthening it again revives the link: the age is inside the signature.
        set_link_days(world.a, 14)
        assert client.get(url, follow=True).status_code == 200


def test_after_anonymisation_the_link_is_no_longer_valid(world, client, linked):
    url = link_url(linked)
    assert client.get(url, follow=True).status_code == 200
    with tenant_scope(world.a):
        anonymise(linked.customer_id, confirmation="C-1", actor=world.users[Role.ADMIN])

    dead(client.get(url, follow=True), "This link is no longer valid.")
    dead(
        client.post(
            url, {"policy_version": "v1", **choices(world.a, "Newsletter", contact=linked)}
        ),
        "This link is no longer valid.",
    )
    assert events(linked) == []


def test_a_link_to_a_deleted_contact_is_no_longer_valid(world, client, linked):
    url = link_url(linked)
    with system_code():
        ContactPerson.objects.filter(pk=linked.pk).delete()
    dead(client.get(url), "This link is not valid.")  # deleted with its contact
