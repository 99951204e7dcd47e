"""Forms of Settings -> Security, for both levels."""

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.text import capfirst

from accounts.roles import RESTRICTABLE_ROLES, Role
from security.allowlist import parse_network
from security.audit import readable
from security.models import SecurityPolicy, default_sms_countries
from security.phones import CountryCodesField, country_name
from security.policy import (
    ENTITY_LEVEL,
    MULTI_LEVEL,
    RULES_BY_FIELD,
    Combine,
    inherited_rule,
    looser_than_inherited,
    rules_at,
)

# Only settings the product enforces are editable: a switch that does nothing would give
# admins a false sense of security. Which level edits which rule is declared once, in
# `security.policy.RULES` (role restrictions and the validity of links to customers are
# entity level only, PRODUCT.md 5 to 7); each field's question, help text and bounds come
# from its SecurityPolicy model field.
RESTRICTION_LABELS = {
    "managed": "sees only the customers they manage (as collector)",
    "assigned": "sees only the customers assigned to them",
}
# The multi-level form; an entity inherits these from it and may only make them stricter.
COMMON_FIELDS = [rule.field for rule in rules_at(MULTI_LEVEL)]
ENTITY_FIELDS = [rule.field for rule in rules_at(ENTITY_LEVEL)]


def describe(field, value):
    """A value as the settings say it ("on", "60", "not set", a choice's label, role
    names): in the save message, and beside a field for the multi-level value."""
    if field == "restricted_roles" and value:
        return ", ".join(str(Role(role).label) for role in value)
    if field == "sms_countries" and value:
        return ", ".join(country_name(code) for code in value)
    choices = dict(SecurityPolicy._meta.get_field(field).flatchoices)
    if choices and value:
        return str(choices[value]).lower()
    return readable(value)


def inheritance_help(rule, help_text, owner, inherited):
    """The help text of an entity field the multi-level policy of `owner` also sets: the
    multi-level value beside it, and what an empty field (or unticked box) means there:
    it sets nothing of its own, so the multi-level value applies."""
    shown = describe(rule.field, inherited)
    said = f"{help_text} Multi-level ({owner}): {shown}."
    if rule.combine == Combine.SHORTEST and inherited is not None:
        # The model's "Empty: passwords do not expire." holds only without an inheritance.
        said = f"{help_text.partition(' Empty:')[0]} Multi-level ({owner}): {shown}."
        said += f" Empty: inherits it ({shown} applies); a value here can only be stricter."
    elif rule.combine == Combine.ANY_TRUE and inherited:
        said += " It applies here whether this box is ticked or not."
    return said


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
    # A list of codes typed as "NO, SE"; left empty, the default country.
    sms_countries = CountryCodesField(
        label=capfirst(SecurityPolicy._meta.get_field("sms_countries").verbose_name),
        help_text=SecurityPolicy._meta.get_field("sms_countries").help_text,
        empty_codes=default_sms_countries,
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
            field = self.fields[name]
            value = getattr(inherited, name)
            field.help_text = inheritance_help(
                RULES_BY_FIELD[name], field.help_text, inherited.group.name, value
            )

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
