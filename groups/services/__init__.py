"""State changes of members groups, one module per concern.

- ``lifecycle``: groups made, changed and destroyed (and a club's "All members");
- ``manual``: members added to and removed from a manual group by hand;
- ``rules``: automatic groups recomputed as diffs, and the groups that depend on them;
- ``member_changes``: a member's automatic groups following its creation, change or deletion.

Each takes the locks of ``locking`` and writes memberships through ``groups.ledger``, the
one writer of membership rows, events and counts. Callers import the package
(``from groups import services``) and call ``services.add_members(...)``.
"""

from groups.services.errors import (
    GroupInUse,
    GroupIsAutomatic,
    GroupIsSystem,
    refuse_membership_by_hand,
    refuse_system,
)
from groups.services.lifecycle import (
    create_group,
    create_system_groups,
    delete_group,
    membership_rule,
    update_group,
)
from groups.services.manual import (
    BulkResult,
    add_member_ids,
    add_members,
    remove_member_ids,
    remove_members,
)
from groups.services.member_changes import (
    leave_all_groups,
    place_new_members,
    refresh_memberships_for_member,
    refresh_memberships_for_members,
)
from groups.services.rules import (
    MembershipDiff,
    check_rule_graph,
    order_for_recompute,
    recompute_audience_followers,
    recompute_group,
    recount_group,
    refresh_relative_date_groups,
    resume_stale_recomputations,
)

__all__ = [
    "BulkResult",
    "GroupInUse",
    "GroupIsAutomatic",
    "GroupIsSystem",
    "MembershipDiff",
    "add_member_ids",
    "add_members",
    "check_rule_graph",
    "create_group",
    "create_system_groups",
    "delete_group",
    "leave_all_groups",
    "membership_rule",
    "order_for_recompute",
    "place_new_members",
    "recompute_audience_followers",
    "recompute_group",
    "recount_group",
    "refresh_memberships_for_member",
    "refresh_memberships_for_members",
    "refresh_relative_date_groups",
    "refuse_membership_by_hand",
    "refuse_system",
    "remove_member_ids",
    "remove_members",
    "resume_stale_recomputations",
    "update_group",
]
