from django.db import migrations, models


class Migration(migrations.Migration):
    """A page of a large group sorted by created_at or updated_at walks the club's members
    in that order instead of sorting the group (groups.selectors.sorted_members)."""

    dependencies = [
        ("members", "0005_import_members_taken"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="member",
            index=models.Index(
                fields=["club", "created_at", "id"], name="member_club_created_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="member",
            index=models.Index(
                fields=["club", "updated_at", "id"], name="member_club_updated_idx"
            ),
        ),
    ]
