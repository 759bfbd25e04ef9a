"""Members groups: manual, automatic and system groups, their memberships and history."""
