"""A restricted collector's customer list, sorted by name, read straight from the index
(entity, collector, name, id) instead of sorting all of the collector's customers. It
replaces (entity, collector), which is its prefix. The search indexes follow in 0004.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_accessgroup_contactperson_customerassignment_invoice_and_more"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="customer",
            index=models.Index(
                fields=["entity", "collector", "name", "id"], name="customer_collector_name"
            ),
        ),
        migrations.RemoveIndex(model_name="customer", name="customer_entity_collector"),
    ]
