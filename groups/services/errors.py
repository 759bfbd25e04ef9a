"""The refusals of group services (each a message and a status, 405, for the API), and the
checks that make them."""

from groups.models import MembersGroup
from loyalty.errors import NotAllowed


class GroupIsSystem(NotAllowed):
    message = "System groups are maintained by the system and cannot be changed or destroyed."


class GroupIsAutomatic(NotAllowed):
    message = "An automatic group's members follow its conditions; they cannot be changed by hand."


class GroupInUse(NotAllowed):
    message = "The group is used by the conditions of other groups."


def refuse_system(group: MembersGroup) -> None:
    """A system group is the system's: changing or destroying it is 405, whatever was sent."""
    if group.system:
        raise GroupIsSystem()


def refuse_membership_by_hand(group: MembersGroup) -> None:
    """Only a manual group's members change by hand: else 405, whatever was sent."""
    refuse_system(group)
    if group.automatic:
        raise GroupIsAutomatic()
