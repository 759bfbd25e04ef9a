"""Domain signals about audiences, sent explicitly by ``audiences.services``."""

from django.dispatch import Signal

# kwargs: audience. Sent inside the transaction, after its conditions changed.
audience_conditions_changed = Signal()

# kwargs: club_id, node (parsed conditions), members_group_id, audience_id (either may be
# None). Sent before a preview: a receiver refuses (raises InvalidParameters on
# "conditions") what saving the conditions as that group's or audience's rule would refuse.
checking_conditions = Signal()
