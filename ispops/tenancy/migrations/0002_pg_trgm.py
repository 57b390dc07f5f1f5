"""pg_trgm, once per database, in public: every ISP schema's search_path ends in public,
so their trigram indexes (subscriber search) find its operator classes there."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
