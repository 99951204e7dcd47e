"""Settings -> Security (both levels), the policy explainer, and the users page."""

import ipaddress

from dateutil.relativedelta import relativedelta
from django.contrib import messages
from django.contrib.auth.mixins import UserPassesTestMixin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views import View
from django.views.generic import DetailView, TemplateView

from accounts.access import MemberRequiredMixin, ScopedObjectMixin
from accounts.models import User
from accounts.roles import Capability, Role
from accounts.tenancy import resolve_tenancy
from security import allowlist, inactivity, lockouts, twofactor
from security.client_ip import client_ip
from security.models import AllowedNetwork, EncryptedTOTPDevice, LoginThrottle, SecurityPolicy
from security.policy import (
    ENTITY_LEVEL,
    RULES_BY_FIELD,
    effective_policy,
    label_of,
    level_values,
    password_expires_at,
    rules_at,
)
from security.selectors import (
    people_managed_by,
    policies_for_entities,
    policy_for,
    roles_in_entity,
    users_in_scope,
    users_with_expired_passwords,
)
from security.services import add_network, remove_network, tightening_impact, update_policy
from security.settings_forms import EntityPolicyForm, GroupPolicyForm, NetworkForm, describe


class PolicyFormView(MemberRequiredMixin, TemplateView):
    """Edit one level's policy; a tightening that hits users asks to confirm first."""

    template_name = "security/settings.html"
    level = None

    def get_policy(self):
        raise NotImplementedError

    def get_form(self, data=None):
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        return self.render_to_response(self.context(self.get_form()))

    def post(self, request, *args, **kwargs):
        policy = self.get_policy()
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.context(form))
        now = timezone.now()
        values = {name: form.cleaned_data[name] for name in form.Meta.fields}
        if (
            values["ip_allowlist_enabled"]
            and request.POST.get("confirm_lockout") != "yes"
            and not self.admin_still_passes(policy, enabled=True)
        ):
            form.add_error(
                "ip_allowlist_enabled",
                f"Your current address {client_ip(request)} is not on the allowlist: with it "
                "on, you would need an SMS code to go on working. Add your address below "
                "first, or confirm.",
            )
            return self.render_to_response(self.context(form, lockout_confirm=True))
        impact = tightening_impact(policy, values, now)
        if impact and request.POST.get("confirmed") != "yes":
            return self.render_to_response(self.context(form, impact=impact))
        changes = update_policy(policy.pk, values, actor=request.user, now=now, request=request)
        if changes:
            said = "; ".join(
                f"{label_of(f)}: {describe(f, new)}" for f, (_, new) in changes.items()
            )
            messages.success(request, f"Saved the {self.level} policy. {said}.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect(request.path)

    def admin_still_passes(self, policy, **change):
        request = self.request
        return allowlist.would_pass(
            request.user,
            request.tenancy.entity,
            client_ip(request),
            list(request.security_policies),
            policy,
            **change,
        )

    def context(self, form, impact=None, lockout_confirm=False, network_form=None):
        policy = self.get_policy()
        return self.get_context_data(
            form=form,
            impact=impact,
            level=self.level,
            lockout_confirm=lockout_confirm,
            networks=policy.networks.select_related("for_user", "created_by"),
            network_form=network_form or NetworkForm(),
            your_ip=client_ip(self.request),
            level_key="entity" if self.level == "entity-level" else "group",
        )


class EntitySecuritySettingsView(PolicyFormView):
    required_capability = Capability.MANAGE_ENTITY_SECURITY
    level = "entity-level"

    def dispatch(self, request, *args, **kwargs):
        # Main admins reach the page through the access even without entity-admin rights.
        if request.user.is_authenticated and request.tenancy.entity is not None:
            if not request.tenancy.can(Capability.MANAGE_ENTITY_SECURITY):
                if request.tenancy.can(Capability.MANAGE_GROUP_SECURITY):
                    return redirect("security-settings-group")
        return super().dispatch(request, *args, **kwargs)

    def get_policy(self):
        return policy_for(entity=self.request.tenancy.entity)

    def inherited(self):
        group = self.request.tenancy.entity.group
        return policy_for(group=group) if group else None

    def get_form(self, data=None):
        return EntityPolicyForm(data, instance=self.get_policy(), inherited=self.inherited())

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            owner=self.request.tenancy.entity.name,
            can_edit_group=self.request.tenancy.can(Capability.MANAGE_GROUP_SECURITY),
            applies=what_applies(self.request.tenancy.entity, self.request.security_policies),
            **kwargs,
        )


def what_applies(entity, loaded):
    """[{label, value, set_by}] of every rule of the entity's page: what applies in the
    entity as saved (its own level and its multi-entity access's combined, as for a
    user who works only here), and which levels set it. From the policy rows the request
    loaded (`loaded`: request.security_policies), which hold this entity's and its
    access's."""
    policies = [
        p
        for p in loaded
        if p.entity_id == entity.pk or (entity.group_id and p.group_id == entity.group_id)
    ]
    levels = [level_values(p) for p in policies]
    effective = effective_policy(levels)
    own = next((p for p in policies if p.entity_id == entity.pk), None)
    own = own or SecurityPolicy(entity=entity)  # its defaults, until first saved
    rows = []
    for rule in rules_at(ENTITY_LEVEL):
        if not rule.combined:
            shown = describe(rule.field, getattr(own, rule.field))
            set_by = (level_values(own).label,)
        elif rule.counts_while and not any(getattr(lv, rule.counts_while) for lv in levels):
            shown, set_by = f"not in use ({label_of(rule.counts_while)}: off)", ()
        else:
            applied = getattr(effective, rule.field)
            shown, set_by = describe(rule.field, applied.value), applied.set_by
        rows.append({"label": rule.label, "value": shown, "set_by": set_by})
    return rows


class GroupSecuritySettingsView(PolicyFormView):
    required_capability = Capability.MANAGE_GROUP_SECURITY
    level = "multi-level"

    def get_policy(self):
        return policy_for(group=self.request.tenancy.group)

    def get_form(self, data=None):
        return GroupPolicyForm(data, instance=self.get_policy())

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            owner=self.request.tenancy.group.name,
            can_edit_entity=self.request.tenancy.can(Capability.MANAGE_ENTITY_SECURITY),
            **kwargs,
        )


class NetworkLevelMixin:
    """Which level's allowlist a network request edits, checked against the role."""

    def level_policy(self, level):
        tenancy = self.request.tenancy
        if level == "group":
            if not tenancy.can(Capability.MANAGE_GROUP_SECURITY):
                raise PermissionDenied("Only the main admin edits the multi-level allowlist.")
            return policy_for(group=tenancy.group)
        if not tenancy.can(Capability.MANAGE_ENTITY_SECURITY):
            raise PermissionDenied("Your role does not give access to security settings.")
        return policy_for(entity=tenancy.entity)

    def back(self, policy):
        return redirect("security-settings-group" if policy.group_id else "security-settings")


def read_as(typed, network):
    """How an address with its host part set was read (203.0.113.9/24 is the network
    203.0.113.0/24), so an admin who meant one address sees that a whole network was added;
    empty otherwise."""
    typed = typed.strip()
    try:
        address = ipaddress.ip_address(typed.split("/")[0])
    except ValueError:
        return ""
    parsed = ipaddress.ip_network(network)
    if "/" not in typed or address == parsed.network_address:
        return ""
    size = f", {parsed.num_addresses:,} addresses" if parsed.version == 4 else ""
    return f" (you typed {typed}: that is the whole network {network}{size})"


class NetworkAddView(NetworkLevelMixin, MemberRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request):
        policy = self.level_policy(request.POST.get("level"))
        form = NetworkForm(request.POST)
        if not form.is_valid():
            # The settings page again, with what was typed and the error beside it.
            view = (GroupSecuritySettingsView if policy.group_id else EntitySecuritySettingsView)()
            view.setup(request)
            return view.render_to_response(view.context(view.get_form(), network_form=form))
        network = form.cleaned_data["network"]
        added = add_network(
            policy,
            network,
            form.cleaned_data["label"],
            actor=request.user,
            now=timezone.now(),
            request=request,
        )
        if added is None:
            messages.info(request, f"{network} is already on the list.")
            return self.back(policy)
        messages.success(
            request,
            f"{network} was added to the {policy.level} allowlist"
            f"{read_as(request.POST.get('network', ''), network)}.",
        )
        return self.back(policy)


class NetworkRemoveView(NetworkLevelMixin, ScopedObjectMixin, View):
    """Remove an allowlist entry of the current entity's (or, for main admins, its
    access's) policy. Asks to confirm when it would shut the admin out."""

    model = AllowedNetwork
    http_method_names = ["post"]
    # The scoped queryset is the check: entries of levels the role may edit, else 404.
    required_capability = None

    def get_scoped_queryset(self):
        tenancy = self.request.tenancy
        condition = (
            Q(policy__entity=tenancy.entity)
            if tenancy.can(Capability.MANAGE_ENTITY_SECURITY)
            else Q(pk__in=[])
        )
        if tenancy.group is not None and tenancy.can(Capability.MANAGE_GROUP_SECURITY):
            condition |= Q(policy__group=tenancy.group)
        return AllowedNetwork.objects.filter(condition).select_related("policy")

    def post(self, request, pk):
        entry = self.get_object()
        policy = entry.policy
        if (
            policy.ip_allowlist_enabled
            and request.POST.get("confirm_lockout") != "yes"
            and not allowlist.would_pass(
                request.user,
                request.tenancy.entity,
                client_ip(request),
                list(request.security_policies),
                policy,
                without_network=entry,
            )
        ):
            return render(
                request,
                "security/network_remove_confirm.html",
                {"entry": entry, "your_ip": client_ip(request)},
            )
        remove_network(entry, actor=request.user, now=timezone.now(), request=request)
        messages.success(request, f"{entry.network} was removed from the {policy.level} allowlist.")
        return self.back(policy)


class EntityUsersMixin:
    """Users are reached only among the people of the current entity."""

    model = User
    required_capability = Capability.MANAGE_USERS

    def get_scoped_queryset(self):
        return users_in_scope(entity=self.request.tenancy.entity)


class UserListView(EntityUsersMixin, MemberRequiredMixin, TemplateView):
    template_name = "security/users.html"

    def get_context_data(self, **kwargs):
        users = list(self.get_scoped_queryset().order_by("email"))
        blocks = {
            key: until
            for key, _, until in lockouts.active_blocks(
                LoginThrottle.Kind.ACCOUNT, keys=[u.email for u in users]
            )
        }
        roles = roles_in_entity(self.request.tenancy.entity)
        with_2fa = set(
            EncryptedTOTPDevice.objects.filter(
                user__in=[u.pk for u in users], confirmed=True
            ).values_list("user_id", flat=True)
        )
        manageable = people_managed_by(self.request.tenancy, [u.pk for u in users])
        expired = users_with_expired_passwords(users, timezone.now())
        rows = [
            {
                "user": u,
                "blocked_until": blocks.get(u.email),
                "has_2fa": u.pk in with_2fa,
                "manageable": u.pk in manageable,
                "role": Role(roles[u.pk]).label if u.pk in roles else "—",
                "password_expired": u.pk in expired,
            }
            for u in users
        ]
        return super().get_context_data(rows=rows, **kwargs)


class PolicyExplainerView(EntityUsersMixin, ScopedObjectMixin, DetailView):
    """Which rules apply to one user, and which level set each one."""

    template_name = "security/explain.html"
    context_object_name = "person"

    def get_context_data(self, **kwargs):
        person = self.object
        entities = [a.entity for a in resolve_tenancy(person).accesses]
        levels = [level_values(p) for p in policies_for_entities(entities)]
        policy = effective_policy(levels)
        now = timezone.now()
        # The rules of the account: every level the person reaches counts for them.
        rules = [
            {"label": label_of(name), "rule": rule}
            for name, rule in policy.rules().items()
            if RULES_BY_FIELD[name].account_wide
        ]
        months = policy.inactivity_limit_months.value
        return super().get_context_data(
            rules=rules,
            entities=entities,
            password_expires=password_expires_at(
                person.password_changed_at, policy.password_max_age_days.value
            ),
            inactive_after=(
                person.last_active_at + relativedelta(months=months) if months else None
            ),
            now=now,
            **kwargs,
        )


class UserActionView(EntityUsersMixin, ScopedObjectMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        person = self.get_object()
        if person.pk in people_managed_by(request.tenancy, [person.pk]):
            self.act(person)
        else:
            messages.error(
                request,
                f"{person.email} also works in entities you do not administer, so only "
                "someone who administers all of them can do this.",
            )
        return redirect("user-list")


class UserReactivateView(UserActionView):
    def act(self, person):
        if person.is_active:
            messages.info(self.request, f"{person.email} is already active.")
            return
        inactivity.reactivate(
            person,
            actor=self.request.user,
            entity=self.request.tenancy.entity,
            request=self.request,
        )
        messages.success(self.request, f"{person.email} can sign in again.")


class UserUnblockView(UserActionView):
    def act(self, person):
        if lockouts.lift(
            LoginThrottle.Kind.ACCOUNT,
            person.email,
            actor=self.request.user,
            entity=self.request.tenancy.entity,
            request=self.request,
        ):
            messages.success(self.request, f"The block on {person.email} was lifted.")
        else:
            messages.info(self.request, f"{person.email} was not blocked.")


class UserResetTwoFactorView(UserActionView):
    def act(self, person):
        reason = self.request.POST.get("reason", "").strip()[:500]
        if not reason:
            messages.error(self.request, "Say why two-factor authentication is being reset.")
            return
        if not twofactor.has_second_factor(person):
            messages.info(self.request, f"{person.email} has no two-factor authentication.")
            return
        twofactor.remove_second_factor(
            person,
            actor=self.request.user,
            request=self.request,
            reason=reason,
            entity=self.request.tenancy.entity,
        )
        messages.success(
            self.request,
            f"Two-factor authentication of {person.email} was reset; they set it up again "
            "at their next sign-in if it is required.",
        )


class OperatorRequiredMixin(UserPassesTestMixin):
    """Platform operators only: IP blocks span tenants, so tenant admins never see them."""

    def test_func(self):
        return self.request.user.is_authenticated and self.request.user.is_staff

    def handle_no_permission(self):
        if not self.request.user.is_authenticated:
            return super().handle_no_permission()
        raise PermissionDenied("Only platform operators manage IP address blocks.")


class IpBlocksView(OperatorRequiredMixin, TemplateView):
    template_name = "security/ip_blocks.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            blocks=lockouts.active_blocks(LoginThrottle.Kind.IP),
            your_ip=client_ip(self.request),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        address = request.POST.get("ip", "").strip()
        if lockouts.lift(LoginThrottle.Kind.IP, address, actor=request.user, request=request):
            messages.success(request, f"The block on {address} was lifted.")
        else:
            messages.error(request, f"{address or 'That address'} is not blocked.")
        return redirect("ip-blocks")
