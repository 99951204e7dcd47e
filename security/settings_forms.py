"""Forms of Settings -> Security, for both levels."""

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from accounts.roles import RESTRICTABLE_ROLES, Role
from security.allowlist import parse_network
from security.models import SecurityPolicy
from security.policy import inherited_rule, looser_than_inherited

# Only settings the product enforces are editable: a switch that does nothing would give
# admins a false sense of security. Role restrictions and the validity of links to
# customers are entity level only (PRODUCT.md 5 to 7).
RESTRICTION_LABELS = {
    "managed": "sees only the customers they manage (as collector)",
    "assigned": "sees only the customers assigned to them",
}
COMMON_FIELDS = [
    "password_max_age_days",
    "inactivity_limit_months",
    "require_2fa",
    "ip_allowlist_enabled",
    "ip_code_recipient",
]
ENTITY_FIELDS = COMMON_FIELDS + ["restricted_roles", "interactive_link_days", "document_link_days"]


class PolicyFormMixin:
    """Number fields take their bounds from the model's validators, so "-3" is told
    "at least 1" rather than the positive-integer column's "at least 0"."""

    def tighten_bounds(self):
        for name, field in self.fields.items():
            if not isinstance(field, forms.IntegerField):
                continue
            model_field = SecurityPolicy._meta.get_field(name)
            for validator in model_field.validators:
                if isinstance(validator, MinValueValidator):
                    field.min_value = validator.limit_value
                    field.widget.attrs["min"] = validator.limit_value
                if isinstance(validator, MaxValueValidator):
                    field.widget.attrs["max"] = validator.limit_value
            field.validators = [
                v for v in field.validators if not isinstance(v, MinValueValidator)
            ] + [MinValueValidator(field.min_value)]


class NetworkForm(forms.Form):
    network = forms.CharField(
        label="Address or network",
        max_length=64,
        help_text="An IPv4 or IPv6 address, or a network in CIDR form (203.0.113.0/24).",
    )
    label = forms.CharField(
        max_length=100, required=False, help_text="Where it is, e.g. “Oslo office”."
    )

    def clean_network(self):
        return str(parse_network(self.cleaned_data["network"]))


class GroupPolicyForm(PolicyFormMixin, forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tighten_bounds()

    class Meta:
        model = SecurityPolicy
        fields = COMMON_FIELDS


class EntityPolicyForm(PolicyFormMixin, forms.ModelForm):
    restricted_roles = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Restrict customer visibility by role",
        help_text="Unticked roles see every customer of the entity.",
        choices=[
            (role.value, f"{role.label}: {RESTRICTION_LABELS[scope]}")
            for role, scope in RESTRICTABLE_ROLES.items()
        ],
    )

    class Meta:
        model = SecurityPolicy
        fields = ENTITY_FIELDS

    def __init__(self, *args, inherited=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tighten_bounds()
        self.inherited = inherited
        if inherited is None:
            return
        for name in COMMON_FIELDS:
            value = getattr(inherited, name)
            shown = {True: "on", False: "off", None: "not set"}.get(value, value)
            if name == "ip_code_recipient":
                shown = inherited.get_ip_code_recipient_display().lower()
            self.fields[name].help_text += f" Multi-level ({inherited.group.name}): {shown}."

    def clean(self):
        cleaned = super().clean()
        if self.inherited is not None:
            for name in COMMON_FIELDS:
                if name in cleaned:
                    problem = looser_than_inherited(
                        name, cleaned[name], inherited_rule(self.inherited, name)
                    )
                    if problem:
                        self.add_error(name, problem)
        return cleaned

    def clean_restricted_roles(self):
        return sorted(Role(value).value for value in self.cleaned_data["restricted_roles"])
