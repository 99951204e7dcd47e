"""Where codes may be texted and numbers waiting for their code: each policy gets the
countries whose mobile numbers may receive validation codes (existing rows: the default,
settings.PHONE_DEFAULT_REGION when the migration runs, since an entity has no country of
its own), and a new number waits in PhoneConfirmation until the code texted to it is
typed. Numbers already on file stay in use as they are."""

import django.db.models.deletion
import django.utils.timezone
import security.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_user_phone'),
        ('security', '0008_bind_totp_keys'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='securitypolicy',
            name='sms_countries',
            field=models.JSONField(blank=True, default=security.models.default_sms_countries, help_text='Two-letter country codes (ISO 3166), such as NO, SE, DK. Validation codes are texted only to mobile numbers of these countries, and a number from elsewhere cannot be saved. Empty: the default region of the installation (PHONE_DEFAULT_REGION), since an entity has no country of its own.', verbose_name='countries whose mobile numbers may receive codes'),
        ),
        migrations.AlterField(
            model_name='securitynotice',
            name='kind',
            field=models.CharField(choices=[('lockout', 'Account blocked after failed sign-ins'), ('twofactor', 'Two-factor authentication changed'), ('password_expiring', 'Password expires soon'), ('inactivity_warning', 'Account deactivated soon'), ('phone_changed', 'Mobile phone number changed')], max_length=30),
        ),
        migrations.CreateModel(
            name='PhoneConfirmation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('phone', models.CharField(max_length=20)),
                ('code_hash', models.CharField(blank=True, max_length=64)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('last_sent_at', models.DateTimeField(blank=True, null=True)),
                ('failures', models.PositiveSmallIntegerField(default=0)),
                ('entity', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.entity')),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
    ]
