"""Password rules, used by every form that sets a password (Django's validator hook).

ComplexityValidator: 9 to 128 characters with a letter, a digit, an uppercase letter and
a special character; each failed rule gets its own message. RecentPasswordValidator: not
one of the last five passwords; it keeps their hashes through the validator
`password_changed` hook, which Django calls whenever a user's password is saved.
"""

from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError


def is_special(ch):
    """Neither a letter nor a digit (in any script: Æ, é and ٣ are not special) nor a
    space."""
    return not ch.isalnum() and not ch.isspace()


class ComplexityValidator:
    def __init__(self, min_length=9, max_length=128):
        self.min_length = min_length
        self.max_length = max_length

    def validate(self, password, user=None):
        errors = []
        if len(password) < self.min_length:
            errors.append(
                ValidationError(
                    f"The password must be at least {self.min_length} characters long.",
                    code="password_too_short",
                )
            )
        if len(password) > self.max_length:
            errors.append(
                ValidationError(
                    f"The password must be at most {self.max_length} characters long "
                    f"(it has {len(password)}).",
                    code="password_too_long",
                )
            )
        if not any(ch.isalpha() for ch in password):
            errors.append(ValidationError("The password must contain a letter.", code="no_letter"))
        if not any(ch.isdigit() for ch in password):
            errors.append(ValidationError("The password must contain a digit.", code="no_digit"))
        if not any(ch.isupper() for ch in password):
            errors.append(
                ValidationError(
                    "The password must contain an uppercase letter.", code="no_uppercase"
                )
            )
        if not any(is_special(ch) for ch in password):
            errors.append(
                ValidationError(
                    "The password must contain a special character, such as ! ? # - or %.",
                    code="no_special",
                )
            )
        if errors:
            raise ValidationError(errors)

    def get_help_text(self):
        return (
            f"{self.min_length} to {self.max_length} characters, with letters, digits, "
            "at least one uppercase letter and one special character."
        )


class RecentPasswordValidator:
    def __init__(self, remember=5):
        self.remember = remember

    def recent_hashes(self, user):
        from security.models import PasswordHistory

        if user is None or user.pk is None:
            return []
        hashes = list(
            PasswordHistory.objects.filter(user=user).values_list("password", flat=True)[
                : self.remember
            ]
        )
        # The current password counts even if it predates the history.
        if user.password and user.password not in hashes and user.has_usable_password():
            hashes.insert(0, user.password)
        return hashes[: self.remember]

    def validate(self, password, user=None):
        for encoded in self.recent_hashes(user):
            if check_password(password, encoded):
                raise ValidationError(
                    f"This password was one of your last {self.remember}; choose another.",
                    code="password_recently_used",
                )

    def password_changed(self, password, user=None):
        from security.models import PasswordHistory

        if user is None or user.pk is None or not user.has_usable_password():
            return
        PasswordHistory.objects.create(user=user, password=user.password)
        keep = PasswordHistory.objects.filter(user=user).values_list("pk", flat=True)[
            : self.remember
        ]
        PasswordHistory.objects.filter(user=user).exclude(pk__in=list(keep)).delete()

    def get_help_text(self):
        return f"Not one of your last {self.remember} passwords."
