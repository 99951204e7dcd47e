"""The sign-in flow after the password: an address outside the allowlists gets its SMS code
at once, so the user lands on the code form with the code on its way; and the session id
rotates on a change of context. Used by the login view and by the entity switch
(security.signin_views)."""

from django.contrib import messages
from django.utils import timezone

from accounts.tenancy import SESSION_ENTITY_KEY, parse_entity_id
from security import allowlist
from security.client_ip import client_ip
from security.models import IpChallenge
from security.selectors import tenancy_and_policies


def rotate_session(request):
    """Give this session a new id, its data kept, the old id ending at once (Django's
    cycle_key), as on every change of privilege or context. A code challenge waiting in
    this session follows it: the code texted before still works, and its tries used stay
    used (a new id must not mean new tries)."""
    old_key = request.session.session_key
    request.session.cycle_key()
    if old_key:
        IpChallenge.objects.filter(
            user=request.user, session_key=old_key, approved_at__isnull=True
        ).update(session_key=request.session.session_key)


def send_code_if_address_not_allowed(request, user, *, unless_one_is_waiting=False):
    """Called by the login view (and on switching entity): text the code at once when the
    address is not allowed, so the user lands on the code form with the code on its way.
    `unless_one_is_waiting`: not when this session already has a code that still works
    (or has used up its tries), so switching back and forth sends no more texts."""
    tenancy, policies = tenancy_and_policies(user)
    wanted = parse_entity_id(request.session.get(SESSION_ENTITY_KEY))
    entity = next((a.entity for a in tenancy.accesses if a.entity.pk == wanted), tenancy.entity)
    if entity is None:
        return
    context = allowlist.context_for(user, entity, policies)
    ip = client_ip(request)
    if allowlist.address_allowed(ip, context):
        return
    now = timezone.now()
    if unless_one_is_waiting:
        waiting = allowlist.open_challenge(user, ip, request.session.session_key, now)
        if waiting is not None and (
            allowlist.exhausted(waiting) or (waiting.expires_at and now < waiting.expires_at)
        ):
            return
    try:
        allowlist.send_code(
            user=user,
            entity=entity,
            ip=ip,
            session_key=request.session.session_key,
            recipient=context.recipient,
            request=request,
            now=now,
        )
    except allowlist.ChallengeError as exc:
        messages.error(request, exc.message)
