"""The audit log is append-only in the database too: a trigger on security_auditevent
refuses every UPDATE and DELETE, whoever sends it (a raw query, a shell, another client).

Two sanctioned paths pass, each only inside its own transaction and only when it says so
with a transaction-local setting:
- `guardrail.audit_erasure = 'on'` (set by AuditEventQuerySet.erase_personal_data and
  erase_visitor_addresses, used by GDPR anonymisation): an UPDATE that changes nothing but
  the personal fields, and only to their erased values (target_label 'Anonym', data {},
  ip NULL);
- `guardrail.audit_retention = 'on'`: a DELETE, for a retention job (none exists yet).

TRUNCATE is not a row operation and is not stopped (the test database is flushed so).
On SQLite this migration does nothing: there the model's own refusals are the guard.
"""

import importlib

from django.db import migrations

PostgresOnly = importlib.import_module(
    "customers.migrations.0004_customer_search_indexes"
).PostgresOnly

FUNCTION = """
CREATE FUNCTION security_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    personal CONSTANT text[] := ARRAY['target_label', 'data', 'ip'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_setting('guardrail.audit_retention', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'The audit log is append-only: DELETE on security_auditevent refused.'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF current_setting('guardrail.audit_erasure', true) = 'on'
       AND (to_jsonb(NEW) - personal) = (to_jsonb(OLD) - personal)
       AND (NEW.target_label = OLD.target_label OR NEW.target_label = 'Anonym')
       AND (NEW.data = OLD.data OR NEW.data = '{}'::jsonb)
       AND (NEW.ip IS NOT DISTINCT FROM OLD.ip OR NEW.ip IS NULL) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'The audit log is append-only: UPDATE on security_auditevent refused.'
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER security_auditevent_append_only
    BEFORE UPDATE OR DELETE ON security_auditevent
    FOR EACH ROW EXECUTE FUNCTION security_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS security_auditevent_append_only ON security_auditevent;
DROP FUNCTION IF EXISTS security_auditevent_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0010_sign_in_reservations_and_reset_throttle"),
    ]

    operations = [PostgresOnly(migrations.RunSQL(FUNCTION, reverse_sql=DROP))]
