"""The audiences' admin with the rule builder, whose endpoints are the groups admin's."""

from __future__ import annotations

from django.contrib import admin

from audiences.admin import AudienceAdmin
from audiences.models import Audience
from audiences.widgets import RuleBuilderUrls
from groups.admin.rule_builder import builder_urls


class AudienceWithBuilderAdmin(AudienceAdmin):
    """The audience admin, its conditions edited with the builder: the group picker and
    the preview's cycle check need the groups' dependencies, which only groups know."""

    def rule_builder_urls(self) -> RuleBuilderUrls | None:
        return builder_urls()


admin.site.unregister(Audience)
admin.site.register(Audience, AudienceWithBuilderAdmin)
