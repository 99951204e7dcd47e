from html import escape

from django import forms
from django.core.exceptions import ValidationError
from django.forms.utils import flatatt
from django.utils.choices import BaseChoiceIterator
from django.utils.functional import cached_property
from django.utils.safestring import mark_safe

from accounts.models import User
from core.forms import ModelMultipleChoiceField
from customers.models import AccessGroup, ContactPerson, Customer
from customers.text import email_key, lf
from security.phones import PhoneNumberField
from security.selectors import users_in_scope


def entity_people(entity):
    return users_in_scope(entity=entity).filter(is_active=True).order_by("full_name", "email")


def person_label(full_name, email):
    return f"{full_name or email} ({email})"


class CompactSelect(forms.Select):
    """A plain select (no option groups, no per-option attributes) written in Python. With
    a few hundred people, Django's template per option took longer than the rest of the
    customer list page, and even `format_html` per option cost a few milliseconds."""

    def render(self, name, value, attrs=None, renderer=None):
        selected = set(self.format_value(value))
        options = "\n".join(
            f'<option value="{escape(str(key))}"{" selected" * (str(key) in selected)}>'
            f"{escape(str(label))}</option>"
            for key, label in self.choices
        )
        attrs = flatatt(self.build_attrs(self.attrs, attrs))
        return mark_safe(f'<select name="{escape(name)}"{attrs}>\n{options}\n</select>')


class ChoiceList(BaseChoiceIterator):
    """Choices already in the form Django wants, a list of (value, label) pairs, taken as
    they are: Django otherwise checks every pair twice (for the field and its widget) on
    each request, which with a few hundred people costs milliseconds on every list page."""

    def __init__(self, pairs):
        self.pairs = list(pairs)

    def __iter__(self):
        return iter(self.pairs)

    def __len__(self):
        return len(self.pairs)


class PersonChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return person_label(obj.full_name, obj.email)


class PeopleChoice(ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return person_label(obj.full_name, obj.email)


class CustomerSearchForm(forms.Form):
    SORTS = {
        "name": ("name", "pk"),
        "-name": ("-name", "-pk"),
        "number": ("number", "pk"),
        "-number": ("-number", "-pk"),
        "balance": ("balance", "pk"),
        "-balance": ("-balance", "-pk"),
    }
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        help_text="The start of words in the name; with a digit, also a customer or "
        "organisation number.",
    )
    collector = forms.TypedChoiceField(
        coerce=int, empty_value=None, required=False, widget=CompactSelect
    )
    sort = forms.ChoiceField(
        required=False,
        widget=CompactSelect,
        choices=[
            ("name", "Name A–Z"),
            ("-name", "Name Z–A"),
            ("number", "Number"),
            ("-number", "Number, descending"),
            ("-balance", "Largest balance"),
            ("balance", "Smallest balance"),
        ],
    )

    def __init__(self, *args, collectors, **kwargs):
        """`collectors`: the people the filter offers, [(pk, full_name, email)] in order
        (see `customers.selectors.collectors_of_visible_customers`)."""
        super().__init__(*args, **kwargs)
        self.fields["collector"].choices = ChoiceList(
            [("", "Any collector")]
            + [(pk, person_label(full_name, email)) for pk, full_name, email in collectors]
        )


def comparable(field, value):
    """A text field's value as compared for "changed": cleaned by the field as a submitted
    value is (stripped; a phone number in E.164), newlines as LF, an email address by
    `email_key`. The stored value goes through the same steps as the submitted one."""
    try:
        text = field.to_python(value)
    except ValidationError:
        text = "" if value is None else str(value).strip()
    text = lf(text or "")
    return email_key(text) if isinstance(field, forms.EmailField) else text


class ChangesOnly:
    """A ModelForm that changes only what the user changed.

    A text field is changed when its submitted value differs from the stored one after
    the same normalisation (`comparable`): an address resubmitted with CRLF newlines, an
    email address whose domain the browser sent as punycode, a phone number stored in
    another notation are not changes. An unchanged field keeps its stored value byte for
    byte; a changed text is stored with LF newlines. `changed_data` is what the save
    service writes (and audits), nothing else."""

    @cached_property
    def changed_data(self):
        return [name for name in self.fields if self.field_changed(name)]

    def field_changed(self, name):
        bound = self[name]
        field = bound.field
        if field.disabled:
            return False
        if isinstance(field, forms.CharField):
            return comparable(field, bound.initial) != comparable(field, bound.data)
        return field.has_changed(bound.initial, bound.data)

    def clean(self):
        cleaned = super().clean()
        for name in self._meta.fields:
            if name not in cleaned or not isinstance(self.fields[name], forms.CharField):
                continue
            if name in self.changed_data:
                cleaned[name] = lf(cleaned[name])
            else:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class CustomerForm(ChangesOnly, forms.ModelForm):
    phone = PhoneNumberField(required=False, mobile_only=False)
    collector = PersonChoice(
        queryset=User.objects.none(), required=False, empty_label="No collector"
    )
    assigned = PeopleChoice(
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Assigned users",
        help_text="Sales, sales administration and guests who follow this customer.",
    )

    class Meta:
        model = Customer
        fields = [
            "number",
            "name",
            "organisation_number",
            "email",
            "phone",
            "address",
            "delivery_address",
            "collector",
            "notes",
        ]
        widgets = {
            "address": forms.Textarea(attrs={"rows": 3}),
            "delivery_address": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 4}),
        }

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.entity = entity
        self.instance.entity = entity
        people = entity_people(entity)
        self.fields["collector"].queryset = people
        self.fields["assigned"].queryset = people
        if self.instance.pk:
            self.fields["assigned"].initial = [a.user_id for a in self.instance.assignments.all()]

    def clean_number(self):
        number = self.cleaned_data["number"].strip()
        clash = Customer.objects.filter(number=number).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"Customer number {number} is already used in this entity.")
        return number


class ContactForm(ChangesOnly, forms.ModelForm):
    phone = PhoneNumberField(required=False, mobile_only=False)

    class Meta:
        model = ContactPerson
        fields = ["name", "title", "email", "phone", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}


class SecretForm(forms.Form):
    title = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=10000)
    groups = ModelMultipleChoiceField(
        queryset=AccessGroup.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Only members of these groups see the secret's title and can reveal it.",
    )

    def __init__(self, *args, groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["groups"].queryset = groups


class AccessGroupForm(forms.ModelForm):
    members = PeopleChoice(
        queryset=User.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = AccessGroup
        fields = ["name", "members"]

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.entity = entity
        self.fields["members"].queryset = entity_people(entity)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if AccessGroup.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"There is already a group called {name}.")
        return name
