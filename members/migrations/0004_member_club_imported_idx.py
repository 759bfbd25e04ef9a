from django.db import migrations, models


class Migration(migrations.Migration):
    """Imports find a known row's member by its email, msisdn or id, so the fingerprint
    needs no index of its own; only "has this club imported members" does."""

    dependencies = [
        ("members", "0003_import_fingerprint"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="member",
            name="member_club_fingerprint_idx",
        ),
        migrations.AddIndex(
            model_name="member",
            index=models.Index(
                condition=models.Q(("import_fingerprint__isnull", False)),
                fields=["club"],
                name="member_club_imported_idx",
            ),
        ),
    ]
