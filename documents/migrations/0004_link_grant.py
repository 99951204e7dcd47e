"""The link grant moves to customers (customers/migrations/0006_link_grant.py): only
Django's model state changes here; the tables, their rows and the invoice actions' foreign
key to the links stay as they are in the database."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0006_link_grant'),
        ('documents', '0003_linkuse_counted'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='linkuse',
                    name='link',
                ),
                migrations.AlterField(
                    model_name='invoiceaction',
                    name='link',
                    field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='customers.customerlink'),
                ),
                migrations.RemoveField(
                    model_name='linkuse',
                    name='entity',
                ),
                migrations.DeleteModel(
                    name='CustomerLink',
                ),
                migrations.DeleteModel(
                    name='LinkUse',
                ),
            ],
            database_operations=[],
        ),
    ]
