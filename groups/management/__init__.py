"""Management commands of the groups app: demo data."""
