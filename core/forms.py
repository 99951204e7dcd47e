"""Form fields shared by the apps."""

from django import forms
from django.core.exceptions import ValidationError

MAX_ID = 2**63 - 1  # ids are signed 64-bit integers


def _beyond_any_id(value):
    try:
        return abs(int(str(value).strip())) > MAX_ID
    except ValueError:
        return False


class ModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Django's field, with a number beyond any id refused as an invalid choice. Django
    answers an out-of-range id with no row for a single lookup, but its `pk__in` lookup
    on SQLite raises OverflowError (PostgreSQL finds no row)."""

    def _check_values(self, value):
        for val in value:
            if _beyond_any_id(val):
                raise ValidationError(
                    self.error_messages["invalid_choice"],
                    code="invalid_choice",
                    params={"value": val},
                )
        return super()._check_values(value)
