"""The one DRF permission class: the permit each view action declares in ``required_permits``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from loyalty.api.authentication import ClubAccess

# Actions that need no permit of their own: an unmapped method (answered 405 by the view)
# and OPTIONS.
UNGUARDED_ACTIONS = (None, "metadata")


class HasClubPermit(BasePermission):
    """Let in callers of the path's club whose token carries the action's permit.

    A view declares ``required_permits = {"list": GROUPS_LIST, ...}``; an action missing
    from it is refused to every caller. Staff sessions need the matching admin permissions.
    """

    message = "The token lacks the permit this operation needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        access = request.auth
        if not isinstance(access, ClubAccess):
            return False  # DRF answers 401, since no authenticator accepted the caller
        if view.action in UNGUARDED_ACTIONS:
            return True
        permit = view.required_permits.get(view.action)
        if access.has_permit(permit):
            return True
        if permit is not None:
            self.message = f"The token lacks the {permit} permit."
        return False
