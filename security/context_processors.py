from django.utils import timezone

from security.policy import days_left


def password_expiry(request):
    """The banner that warns some days before a password expires."""
    user = getattr(request, "user", None)
    policy = getattr(request, "security_policy", None)
    if user is None or policy is None or not user.is_authenticated:
        return {}
    left = days_left(user.password_changed_at, policy.password_max_age_days.value, timezone.now())
    if left is None:
        return {}
    when = "within a day" if left <= 1 else f"in {left} days"
    return {"password_warning": f"Your password expires {when}."}
