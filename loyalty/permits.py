"""The named permits an API token can carry (SPEC section 2), one constant each."""

GROUPS_LIST = "BL:Api:MembersGroups:List"
GROUPS_SHOW = "BL:Api:MembersGroups:Show"
GROUPS_CREATE = "BL:Api:MembersGroups:Create"
GROUPS_UPDATE = "BL:Api:MembersGroups:Update"
GROUPS_DESTROY = "BL:Api:MembersGroups:Destroy"
GROUPS_ADD_MEMBERS = "BL:Api:MembersGroups:AddMembers"
GROUPS_REMOVE_MEMBERS = "BL:Api:MembersGroups:RemoveMembers"
GROUPS_EVENTS = "BL:Api:MembersGroups:Events:List"
MEMBERS_LIST = "BL:Api:Members:List"
MEMBERS_SHOW = "BL:Api:Members:Show"
MEMBERS_CREATE = "BL:Api:Members:Create"
MEMBERS_UPDATE = "BL:Api:Members:Update"
MEMBERS_DESTROY = "BL:Api:Members:Destroy"
MEMBERS_IMPORTS_CREATE = "BL:Api:Members:Imports:Create"
MEMBERS_IMPORTS_SHOW = "BL:Api:Members:Imports:Show"
AUDIENCES_LIST = "BL:Api:Audiences:List"
AUDIENCES_SHOW = "BL:Api:Audiences:Show"
AUDIENCES_CREATE = "BL:Api:Audiences:Create"
AUDIENCES_UPDATE = "BL:Api:Audiences:Update"
AUDIENCES_DESTROY = "BL:Api:Audiences:Destroy"
AUDIENCES_PREVIEW = "BL:Api:Audiences:Preview"

ALL_PERMITS: tuple[str, ...] = (
    GROUPS_LIST,
    GROUPS_SHOW,
    GROUPS_CREATE,
    GROUPS_UPDATE,
    GROUPS_DESTROY,
    GROUPS_ADD_MEMBERS,
    GROUPS_REMOVE_MEMBERS,
    GROUPS_EVENTS,
    MEMBERS_LIST,
    MEMBERS_SHOW,
    MEMBERS_CREATE,
    MEMBERS_UPDATE,
    MEMBERS_DESTROY,
    MEMBERS_IMPORTS_CREATE,
    MEMBERS_IMPORTS_SHOW,
    AUDIENCES_LIST,
    AUDIENCES_SHOW,
    AUDIENCES_CREATE,
    AUDIENCES_UPDATE,
    AUDIENCES_DESTROY,
    AUDIENCES_PREVIEW,
)

_VIEW_GROUPS = ("groups.view_membersgroup",)
_CHANGE_GROUPS = ("groups.change_membersgroup",)
_VIEW_MEMBERS = ("members.view_member",)
_VIEW_AUDIENCES = ("audiences.view_audience",)

# What a staff member's admin session needs, in Django's model permissions, to do through
# the API what each permit allows a token: no more than the admin lets them do.
SESSION_PERMISSIONS: dict[str, tuple[str, ...]] = {
    GROUPS_LIST: _VIEW_GROUPS,
    GROUPS_SHOW: _VIEW_GROUPS,
    GROUPS_CREATE: ("groups.add_membersgroup",),
    GROUPS_UPDATE: _CHANGE_GROUPS,
    GROUPS_DESTROY: ("groups.delete_membersgroup",),
    GROUPS_ADD_MEMBERS: _CHANGE_GROUPS,
    GROUPS_REMOVE_MEMBERS: _CHANGE_GROUPS,
    GROUPS_EVENTS: _VIEW_GROUPS,
    MEMBERS_LIST: _VIEW_MEMBERS,
    MEMBERS_SHOW: _VIEW_MEMBERS,
    MEMBERS_CREATE: ("members.add_member",),
    MEMBERS_UPDATE: ("members.change_member",),
    MEMBERS_DESTROY: ("members.delete_member",),
    MEMBERS_IMPORTS_CREATE: ("members.add_member", "members.change_member"),
    MEMBERS_IMPORTS_SHOW: _VIEW_MEMBERS,
    AUDIENCES_LIST: _VIEW_AUDIENCES,
    AUDIENCES_SHOW: _VIEW_AUDIENCES,
    AUDIENCES_CREATE: ("audiences.add_audience",),
    AUDIENCES_UPDATE: ("audiences.change_audience",),
    AUDIENCES_DESTROY: ("audiences.delete_audience",),
    # A preview shows which members match.
    AUDIENCES_PREVIEW: (*_VIEW_AUDIENCES, *_VIEW_MEMBERS),
}
