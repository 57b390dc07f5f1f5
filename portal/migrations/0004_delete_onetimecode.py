"""The sign-in codes moved to ispops.messaging's PhoneCode (purpose "portal"), one home
for the portal's and the captive page's phone codes. The old rows are dropped, not
copied: a code works for minutes (code_minutes, 10 by default, at most 60), so at worst
a subscriber asks for a new one; the limits they counted start again."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_claims_per_ip"),
        ("messaging", "0003_phone_codes"),
    ]

    operations = [
        migrations.DeleteModel(name="OneTimeCode"),
    ]
