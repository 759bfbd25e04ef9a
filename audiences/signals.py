"""Domain signals about audiences, sent explicitly by ``audiences.services``."""

from django.dispatch import Signal

# kwargs: audience. Sent inside the transaction, after its conditions changed.
audience_conditions_changed = Signal()
