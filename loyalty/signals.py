"""Domain signals about clubs, sent explicitly by ``loyalty.services``."""

from django.dispatch import Signal

# kwargs: club. Sent inside the transaction that created the club.
club_created = Signal()
