"""The link grant (CustomerLink, LinkUse) moves here from documents, so documents and
consent both use it from below. Only Django's model state moves: the tables keep their
names (documents_customerlink, documents_linkuse) and their rows; the content types are
relabelled so permissions and admin history follow the models."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


MOVED = ("customerlink", "linkuse")


def _relabel(apps, old, new):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not content_type.objects.filter(app_label=new, model=model).exists():
            content_type.objects.filter(app_label=old, model=model).update(app_label=new)


def relabel_content_types(apps, schema_editor):
    _relabel(apps, "documents", "customers")


def unrelabel_content_types(apps, schema_editor):
    _relabel(apps, "customers", "documents")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_user_phone'),
        ('customers', '0005_customer_name_words'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('documents', '0003_linkuse_counted'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='CustomerLink',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('document', 'Document'), ('invoice_pdf', 'Invoice PDF'), ('consent', 'Consent page'), ('interactive', 'Customer page')], max_length=20)),
                        ('token_hash', models.CharField(max_length=64, unique=True)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('max_uses', models.PositiveIntegerField(blank=True, null=True)),
                        ('uses', models.PositiveIntegerField(default=0)),
                        ('revoked_at', models.DateTimeField(blank=True, null=True)),
                        ('contact', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='links', to='customers.contactperson')),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='links', to='customers.customer')),
                        ('document', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='links', to='documents.document')),
                        ('entity', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.entity')),
                        ('invoice', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='links', to='customers.invoice')),
                    ],
                    options={
                        'db_table': 'documents_customerlink',
                        'ordering': ['-created_at', '-pk'],
                    },
                ),
                migrations.CreateModel(
                    name='LinkUse',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('used_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('ip', models.GenericIPAddressField(blank=True, null=True)),
                        ('user_agent', models.CharField(blank=True, max_length=300)),
                        ('counted', models.BooleanField(db_default=True, default=True)),
                        ('entity', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.entity')),
                        ('link', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='use_log', to='customers.customerlink')),
                    ],
                    options={
                        'db_table': 'documents_linkuse',
                        'ordering': ['-used_at', '-pk'],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(relabel_content_types, unrelabel_content_types),
    ]
