"""PostgreSQL indexes for the customer search (`customers.selectors.search_customers`).

- A GIN index on (entity, collector, the words of the name) for the name search, a
  full-text prefix query over the name's words. The entity and the collector are part
  of the index (btree_gin), so a search reads the matches of one entity (and, for a
  restricted collector, of their customers) only, not those of every entity on the
  platform. The tenant scope and the collector filter compare as bigints
  (accounts.tenancy.bigint), which btree_gin needs.
- Pattern btrees on (entity, UPPER(number)) and (entity, UPPER(organisation_number)) for
  the prefix searches (`istartswith`): the database's collation is not "C", so a plain
  btree does not serve LIKE.

These operations touch PostgreSQL databases only and stay out of the model state, so
SQLite (the development default) migrates as before and `makemigrations` does not try to
create them there. They are built CONCURRENTLY (no write lock on a large table), which
needs a migration outside a transaction.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import AddIndexConcurrently, BtreeGinExtension
from django.contrib.postgres.search import SearchVector
from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Upper


class PostgresOnly(migrations.operations.base.Operation):
    """Run `operation` on PostgreSQL databases only; it never changes the model state."""

    reduces_to_sql = False

    def __init__(self, operation):
        self.operation = operation
        self.reversible = operation.reversible

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.operation], {})

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"{self.operation.describe()} (PostgreSQL only)"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0003_customer_collector_name_index")]

    operations = [
        PostgresOnly(BtreeGinExtension()),
        PostgresOnly(
            AddIndexConcurrently(
                model_name="customer",
                index=GinIndex(
                    F("entity_id"),
                    F("collector_id"),
                    SearchVector("name", config="simple"),
                    name="customer_name_words",
                ),
            )
        ),
        PostgresOnly(
            AddIndexConcurrently(
                model_name="customer",
                index=models.Index(
                    F("entity_id"),
                    OpClass(Upper("number"), name="text_pattern_ops"),
                    name="customer_number_prefix",
                ),
            )
        ),
        PostgresOnly(
            AddIndexConcurrently(
                model_name="customer",
                index=models.Index(
                    F("entity_id"),
                    OpClass(Upper("organisation_number"), name="text_pattern_ops"),
                    name="customer_orgno_prefix",
                ),
            )
        ),
    ]
