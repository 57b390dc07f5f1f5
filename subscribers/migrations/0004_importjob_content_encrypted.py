"""Import jobs keep their file encrypted, and not at all once finished: the files hold
PPPoE passwords (security issue 12, finding 6)."""

from django.db import migrations

import ispops.lib.crypto


def encrypt_or_drop_files(apps, schema_editor):
    # Raw SQL: the model's field would try to decrypt the plaintext already stored.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE subscribers_importjob SET content = '' WHERE state IN ('done', 'failed')"
        )
        cursor.execute("SELECT id, content FROM subscribers_importjob WHERE content <> ''")
        for pk, content in cursor.fetchall():
            cursor.execute(
                "UPDATE subscribers_importjob SET content = %s WHERE id = %s",
                [ispops.lib.crypto.encrypt(content), pk],
            )


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0003_hourly_plans_prepaid"),
    ]

    operations = [
        migrations.AlterField(
            model_name="importjob",
            name="content",
            field=ispops.lib.crypto.EncryptedTextField(blank=True),
        ),
        migrations.RunPython(encrypt_or_drop_files, migrations.RunPython.noop, elidable=True),
    ]
