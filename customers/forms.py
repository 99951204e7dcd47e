from html import escape

from django import forms
from django.forms.utils import flatatt
from django.utils.choices import BaseChoiceIterator
from django.utils.safestring import mark_safe

from accounts.models import User
from core.forms import ModelMultipleChoiceField
from customers.models import AccessGroup, ContactPerson, Customer
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


class CustomerForm(forms.ModelForm):
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


class ContactForm(forms.ModelForm):
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
