"""Management commands of the loyalty app."""
