"""Consents: default purposes, reading the current state, changing it (always with a
ledger entry), and the signed self-service link."""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from consent.models import (
    Channel,
    ConsentEvent,
    ConsentPurpose,
    ConsentSource,
    ConsentState,
    LegalBasis,
    PrivacySettings,
)
from core import emails
from core.http import site_url
from customers.links import consent_page_token as make_link_token
from documents.models import OutgoingEmail
from security.audit import record
from security.selectors import policy_for

# The purpose whose consent an emailed payment reminder needs.
REMINDER_EMAIL = "invoice_email"

# (code, name, channel, legal basis, description)
DEFAULT_PURPOSES = [
    (
        REMINDER_EMAIL,
        "Invoices and reminders by email",
        Channel.EMAIL,
        LegalBasis.CONTRACT,
        "Invoices, payment reminders and account statements sent by email.",
    ),
    (
        "reminder_sms",
        "Reminders by SMS",
        Channel.SMS,
        LegalBasis.CONSENT,
        "Payment reminders and notices by text message.",
    ),
    (
        "phone",
        "Phone calls",
        Channel.PHONE,
        LegalBasis.LEGITIMATE_INTEREST,
        "Calls about invoices and payments.",
    ),
    (
        "newsletter",
        "Newsletter",
        Channel.EMAIL,
        LegalBasis.CONSENT,
        "News and offers by email. You can say no at any time.",
    ),
    ("post", "Letters by post", Channel.POST, LegalBasis.CONTRACT, "Invoices and notices by post."),
]


def purposes_for(entity):
    """The entity's active purposes; a new entity gets the defaults on first use."""
    purposes = ConsentPurpose.objects.filter(entity=entity, active=True)
    if not ConsentPurpose.objects.filter(entity=entity).exists():
        ConsentPurpose.objects.bulk_create(
            [
                ConsentPurpose(
                    entity=entity,
                    code=code,
                    name=name,
                    channel=channel,
                    legal_basis=basis,
                    description=description,
                    position=position,
                )
                for position, (code, name, channel, basis, description) in enumerate(
                    DEFAULT_PURPOSES
                )
            ],
            ignore_conflicts=True,
        )
    return list(purposes)


def consent_given(contact, code):
    """(granted, purpose) for the purpose with `code`; a missing purpose is not granted."""
    purposes_for(contact.entity)
    purpose = ConsentPurpose.objects.filter(entity=contact.entity, code=code).first()
    if purpose is None:
        return False, None
    state = ConsentState.objects.filter(contact=contact, purpose=purpose).first()
    return bool(state and state.granted), purpose


def reminder_email_consent(contact):
    """(granted, purpose): whether `contact` consents to invoices and reminders by email.
    Documents asks this before every email (settings.EMAIL_CONSENT_CHECK names it)."""
    return consent_given(contact, REMINDER_EMAIL)


def privacy_of(entity):
    return PrivacySettings.objects.get_or_create(entity=entity)[0]


def consent_matrix(contacts, purposes):
    """{contact_id: {purpose_id: granted}} for these contacts (one query)."""
    matrix = {contact.pk: {p.pk: False for p in purposes} for contact in contacts}
    states = ConsentState.objects.filter(contact__in=contacts, purpose__in=purposes)
    for state in states:
        matrix[state.contact_id][state.purpose_id] = state.granted
    return matrix


@dataclass(frozen=True)
class Seen:
    """What a consent page showed for one purpose: the answer, and the ledger's newest
    entry for it then (0: none), so a change made and undone meanwhile is still seen."""

    answer: bool | None
    version: int = 0


def newest_entries(contact):
    """{purpose_id: id of the contact's newest ledger entry for it}."""
    return dict(
        ConsentEvent.objects.filter(contact=contact)
        .values("purpose_id")
        .annotate(newest=Max("id"))
        .values_list("purpose_id", "newest")
    )


def seen_now(contact, purposes):
    """{purpose_id: Seen} as a page loaded now would show them (two queries); the answer
    is None for a purpose never recorded."""
    answers = dict(
        ConsentState.objects.filter(contact=contact, purpose__in=purposes).values_list(
            "purpose_id", "granted"
        )
    )
    versions = newest_entries(contact)
    return {p.pk: Seen(answers.get(p.pk), versions.get(p.pk, 0)) for p in purposes}


class ConsentConflict(Exception):
    """Consents the person changed on a page that someone else changed meanwhile."""

    def __init__(self, purposes):
        super().__init__(", ".join(p.name for p in purposes))
        self.purposes = purposes


def changes_on_page(values, seen, states, versions, *, clash):
    """What a page's save writes: the boxes the person changed, and first answers (a box
    never recorded is recorded as shown). A box someone else changed since the page was
    loaded (the ledger has a newer entry) is left as they set it unless the person changed
    it too; then `clash` says what happens: "refuse" raises ConsentConflict, "apply" writes
    the person's choice."""
    wanted, clashes = {}, []
    for purpose, granted in values.items():
        if purpose not in seen:
            continue  # not on the page they saw
        shown = seen[purpose].answer
        state = states.get(purpose.pk)
        now = state.granted if state is not None else None
        changed_here = granted != bool(shown)
        if versions.get(purpose.pk, 0) == seen[purpose].version:
            if changed_here or shown is None:
                wanted[purpose] = granted
        elif changed_here and granted != now:
            if clash == "refuse":
                clashes.append(purpose)
            else:
                wanted[purpose] = granted
    if clashes:
        raise ConsentConflict(clashes)
    return wanted


def set_consents(
    contact,
    values,
    *,
    source,
    seen=None,
    clash="refuse",
    now=None,
    actor=None,
    ip=None,
    user_agent="",
    policy_version="",
):
    """Apply {purpose: granted}; every real change writes a ledger row with the state.
    From a page, `seen` is {purpose: Seen, what the page showed} and only what the person
    changed there is applied (see `changes_on_page`), so a page left open never undoes a
    newer change. Returns the events written."""
    now = now or timezone.now()
    events = []
    with transaction.atomic():
        states = {
            s.purpose_id: s
            for s in ConsentState.objects.select_for_update().filter(contact=contact)
        }
        if seen is not None:
            values = changes_on_page(values, seen, states, newest_entries(contact), clash=clash)
        for purpose, granted in values.items():
            state = states.get(purpose.pk)
            old = state.granted if state is not None else None
            if old is not None and old == granted:
                continue
            # A first answer is recorded even when it is "no": the ledger shows who said
            # what, and when.
            if state is None:
                ConsentState.objects.create(
                    entity=contact.entity,
                    contact=contact,
                    purpose=purpose,
                    granted=granted,
                    updated_at=now,
                )
            else:
                ConsentState.objects.filter(pk=state.pk).update(granted=granted, updated_at=now)
            events.append(
                ConsentEvent(
                    entity=contact.entity,
                    contact=contact,
                    purpose=purpose,
                    old_value=old,
                    new_value=granted,
                    source=source,
                    actor=actor,
                    created_at=now,
                    ip=ip,
                    user_agent=(user_agent or "")[:300],
                    privacy_policy_version=policy_version,
                )
            )
        ConsentEvent.objects.bulk_create(events)
    return events


def send_consent_link(contact, *, actor, request):
    """Email `contact` a link to their consent page: a customer email, queued in the
    customers' outbox (OutgoingEmail, kind "consent_link") with the link and the audit
    event, and sent by the worker once they commit."""
    with transaction.atomic():
        token = make_link_token(contact, actor=actor, request=request)
        url = site_url(reverse("consent-self-service", args=[token]))  # never the Host
        days = policy_for(entity=contact.entity).interactive_link_days
        emails.queue(
            OutgoingEmail,
            to=contact.email,
            subject=f"Your communication preferences with {contact.entity.name}",
            text_template="emails/consent_link.txt",
            context={"contact": contact, "entity": contact.entity, "days": days, "url": url},
            entity=contact.entity,
            customer=contact.customer,
            contact=contact,
            kind="consent_link",
            created_by=actor,
        )
        record(
            "consent.link_sent",
            actor=actor,
            entity=contact.entity,
            target=contact.customer,
            request=request,
            data={"contact": contact.pk},
        )


def save_staff_consents(contact, choices, *, seen, actor, request):
    """Staff change a contact's consents on its consent page (raises ConsentConflict when
    someone else changed a box meanwhile: nothing is saved); one audit event for the save."""
    with transaction.atomic():
        events = set_consents(contact, choices, seen=seen, source=ConsentSource.STAFF, actor=actor)
        if events:
            record(
                "consent.changed",
                actor=actor,
                entity=contact.entity,
                target=contact.customer,
                request=request,
                data={
                    "contact": contact.pk,
                    "changes": {e.purpose.name: [e.old_value, e.new_value] for e in events},
                },
            )
    return events


def add_processor(form, *, actor, request):
    """Save a new data processor (a ProcessorForm on the entity's instance); audited."""
    with transaction.atomic():
        processor = form.save()
        record(
            "privacy.processor.added",
            actor=actor,
            entity=processor.entity,
            target=processor,
            request=request,
            data={"name": processor.name},
        )
    return processor


def remove_processor(processor, *, actor, request):
    with transaction.atomic():
        processor.delete()
        record(
            "privacy.processor.removed",
            actor=actor,
            entity=processor.entity,
            request=request,
            data={"name": processor.name},
        )


def save_privacy_settings(form, *, actor, request):
    """Save the privacy policy's address and version (a PrivacyForm); audits what changed."""
    privacy = form.instance
    old = PrivacySettings.objects.filter(pk=privacy.pk).values(*form.Meta.fields).first() or {}
    with transaction.atomic():
        form.save()
        changes = {
            k: [old.get(k, ""), form.cleaned_data[k]]
            for k in form.Meta.fields
            if old.get(k, "") != form.cleaned_data[k]
        }
        if changes:
            record(
                "privacy.settings.changed",
                actor=actor,
                entity=privacy.entity,
                request=request,
                data={"changes": changes},
            )
    return changes


def forget_contacts(contact_ids):
    """The consent ledger's part of a GDPR erasure: the answers and their times stay (the
    proof of consent), who answered from where does not."""
    ConsentEvent.objects.filter(contact_id__in=contact_ids).update(ip=None, user_agent="")
