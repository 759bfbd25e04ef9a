"""Domain signals about members, sent explicitly by ``members.services`` inside its transaction."""

from django.dispatch import Signal

# kwargs: member, created (bool). Sent after the row is written.
member_saved = Signal()
# kwargs: club, member_ids (list[int]). Sent after a batch of members is inserted.
members_created = Signal()
# kwargs: club, member_ids (list[int]), source, actor. Sent after a batch of members changed.
members_updated = Signal()
# kwargs: member. Sent before the row is deleted, so receivers still see its memberships.
member_deleting = Signal()
