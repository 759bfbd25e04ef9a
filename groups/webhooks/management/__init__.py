"""Management commands of webhooks."""
