"""The refusals of group services: each a message and a status (405) for the API."""

from loyalty.errors import NotAllowed


class GroupIsSystem(NotAllowed):
    message = "System groups are maintained by the system and cannot be changed or destroyed."


class GroupIsAutomatic(NotAllowed):
    message = "An automatic group's members follow its conditions; they cannot be changed by hand."


class GroupInUse(NotAllowed):
    message = "The group is used by the conditions of other groups."
