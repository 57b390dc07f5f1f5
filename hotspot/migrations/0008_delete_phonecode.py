"""The captive page's phone codes moved to ispops.messaging's PhoneCode (purpose
"hotspot"), one home for the portal's and the captive page's phone codes. The old rows
are dropped, not copied: a code works for minutes (the portal's code_minutes, 10 by
default, at most 60), so at worst a visitor asks for a new one; the limits they counted
start again."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("hotspot", "0007_bypass"),
        ("messaging", "0003_phone_codes"),
    ]

    operations = [
        migrations.DeleteModel(name="PhoneCode"),
    ]
