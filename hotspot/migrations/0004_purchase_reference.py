import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("hotspot", "0003_batch_commission"),
        ("payments", "0004_stk_purpose"),
    ]

    operations = [
        # No purchase exists before this migration (it came in the same hour as the table).
        migrations.AddField(
            model_name="purchase",
            name="reference",
            field=models.CharField(default="", max_length=12, unique=True),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="purchase",
            name="stk",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="hotspot_purchase",
                to="payments.stkrequest",
            ),
        ),
    ]
