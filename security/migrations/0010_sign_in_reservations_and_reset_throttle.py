"""Sign-in attempts whose password is being checked are counted apart from confirmed
failures (`in_flight`, `in_flight_since`), so a correct password is never refused for
attempts still in flight; the password-reset counters (per address typed, per IP
address) are two more kinds of LoginThrottle; reset links are queued security notices."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0009_sms_countries_phone_confirmation"),
    ]

    operations = [
        migrations.AddField(
            model_name="loginthrottle",
            name="in_flight",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="loginthrottle",
            name="in_flight_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="loginthrottle",
            name="kind",
            field=models.CharField(
                choices=[
                    ("account", "Account"),
                    ("ip", "IP address"),
                    ("reset", "Password reset, address typed"),
                    ("reset_ip", "Password reset, IP address"),
                ],
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="securitynotice",
            name="kind",
            field=models.CharField(
                choices=[
                    ("lockout", "Account blocked after failed sign-ins"),
                    ("twofactor", "Two-factor authentication changed"),
                    ("password_expiring", "Password expires soon"),
                    ("inactivity_warning", "Account deactivated soon"),
                    ("password_reset", "Password reset link"),
                    ("phone_changed", "Mobile phone number changed"),
                ],
                max_length=30,
            ),
        ),
    ]
