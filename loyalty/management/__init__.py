"""Management commands of the loyalty app: club and API token set-up."""
