# The audit chain becomes keyed (HMAC, key outside the database): the head remembers from
# which entry on. Existing trails are upgraded by their next write (an `audit.key` entry that
# commits to the earlier, plain SHA-256 chain): see weeke_pipeline/reading/audit.py.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reading', '0004_case_session'),
    ]

    operations = [
        migrations.AddField(
            model_name='audithead',
            name='keyed',
            field=models.BooleanField(default=False),
        ),
    ]
