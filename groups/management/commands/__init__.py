"""Management commands of the groups app."""
