"""The words of every customer's name in a table of their own (`CustomerNameWord`), kept
in step by a trigger: the name search becomes a range scan of a btree instead of a GIN
scan plus a fetch and sort of every match.

On PostgreSQL only (hand-written SQL: Django has no triggers, and an index with a
collation on one column and INCLUDE is clearer as SQL than as Index options):

- The word column compares byte-wise (COLLATE "C"): a prefix is then the range
  [prefix, prefix with its last character's successor), which a generic plan of a
  prepared statement uses as an index range (a LIKE with a parameter pattern it cannot).
- (entity, word, sort_name, customer) INCLUDE (collector): a page of one entity's
  matches and their count from the index alone; a collector filter is checked on the
  index tuple. (entity, collector, word, sort_name, customer) for a restricted
  collector and the collector filter, who read only their own customers' words.
- The trigger rewrites a customer's words when it is inserted (also `bulk_create` and
  COPY with triggers on), deleted, or its name, collector or entity change (a change of
  collector or entity only moves the words). It is created before the backfill, inside
  the migration's transaction: its lock on customers_customer holds writers back until
  the backfill is committed, so no customer is missed or written twice.

SQLite (development) gets the empty table only; the search there uses its fallback.
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Migration modules start with a digit, so the helper of 0004 is imported by name.
PostgresOnly = importlib.import_module(
    "customers.migrations.0004_customer_search_indexes"
).PostgresOnly

FUNCTION = """
CREATE FUNCTION customers_customer_name_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.name IS NOT DISTINCT FROM NEW.name THEN
        UPDATE customers_customernameword
           SET entity_id = NEW.entity_id, collector_id = NEW.collector_id
         WHERE customer_id = NEW.id;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM customers_customernameword WHERE customer_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO customers_customernameword
            (entity_id, collector_id, customer_id, word, sort_name)
        SELECT NEW.entity_id, NEW.collector_id, NEW.id, words.lexeme, upper(NEW.name)
          FROM unnest(to_tsvector('simple', coalesce(NEW.name, ''))) AS words;
    END IF;
    RETURN NULL;
END
$$;
"""

# Django's save() writes every column: the update trigger runs only when one of the
# three columns the words depend on really changed.
TRIGGERS = """
CREATE TRIGGER customer_name_words_insert AFTER INSERT ON customers_customer
    FOR EACH ROW EXECUTE FUNCTION customers_customer_name_words();
CREATE TRIGGER customer_name_words_delete AFTER DELETE ON customers_customer
    FOR EACH ROW EXECUTE FUNCTION customers_customer_name_words();
CREATE TRIGGER customer_name_words_update
    AFTER UPDATE OF name, collector_id, entity_id ON customers_customer
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name
          OR OLD.collector_id IS DISTINCT FROM NEW.collector_id
          OR OLD.entity_id IS DISTINCT FROM NEW.entity_id)
    EXECUTE FUNCTION customers_customer_name_words();
"""

DROP_TRIGGERS = """
DROP TRIGGER customer_name_words_update ON customers_customer;
DROP TRIGGER customer_name_words_delete ON customers_customer;
DROP TRIGGER customer_name_words_insert ON customers_customer;
DROP FUNCTION customers_customer_name_words();
"""

# The same words as the trigger writes, for every existing customer in one statement.
BACKFILL = """
INSERT INTO customers_customernameword (entity_id, collector_id, customer_id, word, sort_name)
SELECT c.entity_id, c.collector_id, c.id, words.lexeme, upper(c.name)
  FROM customers_customer c,
       unnest(to_tsvector('simple', coalesce(c.name, ''))) AS words;
"""

INDEXES = """
CREATE INDEX customer_word_entity ON customers_customernameword
    (entity_id, word, sort_name, customer_id) INCLUDE (collector_id);
CREATE INDEX customer_word_collector ON customers_customernameword
    (entity_id, collector_id, word, sort_name, customer_id);
ANALYZE customers_customernameword;
"""

DROP_INDEXES = """
DROP INDEX customer_word_collector;
DROP INDEX customer_word_entity;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_phone"),
        ("customers", "0004_customer_search_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CustomerNameWord",
            fields=[
                ("word", models.TextField()),
                ("sort_name", models.TextField()),
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "customer",
                        "word",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "collector",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "customer",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="customers.customer",
                    ),
                ),
                (
                    "entity",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="accounts.entity",
                    ),
                ),
            ],
        ),
        # Before any row and index: the primary key is rebuilt with the new collation.
        PostgresOnly(
            migrations.RunSQL(
                'ALTER TABLE customers_customernameword ALTER COLUMN word TYPE text COLLATE "C";',
                reverse_sql=migrations.RunSQL.noop,
            )
        ),
        PostgresOnly(migrations.RunSQL(FUNCTION + TRIGGERS, reverse_sql=DROP_TRIGGERS)),
        PostgresOnly(migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop)),
        PostgresOnly(migrations.RunSQL(INDEXES, reverse_sql=DROP_INDEXES)),
    ]
