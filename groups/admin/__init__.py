"""Admin of groups: the members groups' pages (with the rule builder's endpoints,
``rule_builder``, which the audience form uses too), and the groups column and filter of
the members list (the members admin knows nothing of groups; this app adds them)."""

from groups.admin import members, members_groups

__all__ = ["members", "members_groups"]
