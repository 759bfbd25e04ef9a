"""Members of a loyalty club."""
