"""Message.State.LOGGED: a message only written to the server log is "Not sent: no
provider", never "Sent". SMS marked sent by the console gateway before (its ids start
with "console-") are relabelled; email cannot be told apart afterwards and is left."""

from django.db import migrations, models

NO_SMS_PROVIDER = (
    "No SMS provider is set up, so it was written to the server log only. "
    "Choose one under Settings, SMS and email."
)


def relabel_console_sms(apps, schema_editor):
    Message = apps.get_model("messaging", "Message")
    Message.objects.filter(state="sent", channel="sms", provider_id__startswith="console-").update(
        state="logged", sent_at=None, error=NO_SMS_PROVIDER
    )


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0003_phone_codes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="state",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("sending", "Sending"),
                    ("sent", "Sent"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped (opted out)"),
                    ("logged", "Not sent: no provider"),
                ],
                default="queued",
                max_length=8,
            ),
        ),
        migrations.RunPython(relabel_console_sms, migrations.RunPython.noop),
    ]
