from django import forms
from django.contrib.auth.forms import AuthenticationForm


class EmailLoginForm(AuthenticationForm):
    """Django's login form, labelled for email addresses. The error for an unknown address
    and for a wrong password is the same, so the form never reveals who has an account."""

    username = forms.CharField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an active account.",
    }

    def clean_username(self):
        return self.cleaned_data["username"].strip()
