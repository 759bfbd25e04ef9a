from django.db import migrations


def mark_own_audiences(apps, schema_editor):
    # The audiences of manual and system groups were made for them. An automatic group's
    # may be a client's (created with audience_id): left unmarked, it is never removed.
    Audience = apps.get_model("audiences", "Audience")
    MembersGroup = apps.get_model("groups", "MembersGroup")
    own = MembersGroup.objects.filter(automatic=False) | MembersGroup.objects.filter(system=True)
    Audience.objects.filter(pk__in=own.values("audience_id")).update(made_for_group=True)


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0002_audience_made_for_group"),
        ("groups", "0004_webhook_delivery_pruning"),
    ]

    operations = [
        migrations.RunPython(mark_own_audiences, migrations.RunPython.noop),
    ]
