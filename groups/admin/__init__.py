"""Admin of groups: the members groups' pages (with the rule builder's endpoints,
``rule_builder``, which the audience form uses too: ``audiences`` registers the audience
admin again with them), and the groups column and filter of the members list (the members
admin knows nothing of groups; this app adds them)."""

from groups.admin import audiences, members, members_groups

__all__ = ["audiences", "members", "members_groups"]
