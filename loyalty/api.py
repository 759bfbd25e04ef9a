"""The single DRF router: every API viewset, under /v3/<loyalty_club_slug>/ (no trailing slash)."""

from rest_framework.routers import SimpleRouter

from audiences.views import AudienceViewSet
from groups.views import MemberGroupsViewSet, MembersGroupViewSet
from members.import_views import MemberImportViewSet
from members.views import MemberViewSet

router = SimpleRouter(trailing_slash=False)
router.register("members_groups", MembersGroupViewSet, basename="members-group")
router.register("members", MemberViewSet, basename="member")
router.register("members/imports", MemberImportViewSet, basename="member-import")
router.register(
    r"members/(?P<member_pk>[0-9]{1,18})/members_groups",
    MemberGroupsViewSet,
    basename="member-members-group",
)
router.register("audiences", AudienceViewSet, basename="audience")
