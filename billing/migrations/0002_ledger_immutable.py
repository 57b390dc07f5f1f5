"""Ledger entries are never changed or deleted, whatever code tries: a trigger refuses
UPDATE and DELETE on billing_ledgerentry (in each ISP's schema)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="""
                CREATE OR REPLACE FUNCTION ispops_ledger_immutable() RETURNS trigger AS $$
                BEGIN
                    RAISE EXCEPTION 'ledger entries are never changed or deleted; '
                                    'record a correcting entry instead';
                END;
                $$ LANGUAGE plpgsql;
                CREATE TRIGGER ledger_immutable BEFORE UPDATE OR DELETE ON billing_ledgerentry
                    FOR EACH ROW EXECUTE FUNCTION ispops_ledger_immutable();
            """,
            reverse_sql="""
                DROP TRIGGER IF EXISTS ledger_immutable ON billing_ledgerentry;
                DROP FUNCTION IF EXISTS ispops_ledger_immutable();
            """,
        ),
    ]
