from django import forms

from accounts.models import User
from customers.models import AccessGroup, ContactPerson, Customer
from security.phones import PhoneNumberField


def entity_people(entity):
    from security.selectors import users_in_scope

    return users_in_scope(entity=entity).filter(is_active=True).order_by("full_name", "email")


class PersonChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.full_name or obj.email} ({obj.email})"


class PeopleChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.full_name or obj.email} ({obj.email})"


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
        help_text="Name, customer number or organisation number.",
    )
    collector = PersonChoice(
        queryset=User.objects.none(), required=False, empty_label="Any collector"
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("name", "Name A–Z"),
            ("-name", "Name Z–A"),
            ("number", "Number"),
            ("-number", "Number, descending"),
            ("-balance", "Largest balance"),
            ("balance", "Smallest balance"),
        ],
    )

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the people who collect customers here (a short list, from the
        # (entity, collector) index), not everyone with access to the entity.
        collectors = Customer.objects.filter(collector__isnull=False).values("collector_id")
        self.fields["collector"].queryset = User.objects.filter(
            pk__in=collectors.distinct()
        ).order_by("full_name", "email")


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
    groups = forms.ModelMultipleChoiceField(
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
