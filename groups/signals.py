"""Domain signals of groups, sent by ``groups.ledger`` inside the transaction of the change."""

from django.dispatch import Signal

# kwargs: club_id, kind ("joined" or "left"), group_ids (sorted). Sent once per change of
# members, as the ledger records its events. A receiver that needs the events returns a
# function: the ledger calls it, in the same transaction, with the recorded events as
# (event id, group id) pairs. When every receiver returns None no event id is read back,
# so a change nobody follows costs nothing more.
memberships_changed = Signal()
