"""The rule builder's admin endpoints, for the group and the audience forms alike.

``rule-catalogue/`` (GET) says what a rule may name in a club besides the standard fields:
the property keys and consents found in its members, and the groups a members-group
condition may pick. ``preview/`` (POST) counts who matches the conditions being edited
(or, asked not to count, only checks them: as saving would, group references included),
says the rule in words, and for a group who would join and leave it; a refusal comes back
with each error's place in the rule, for the builder to show at its row. Both answer JSON,
for the clubs the user manages only, and save nothing.

They sit in the groups admin, the top layer, because the picker leaves out the groups that
would make a cycle, which only ``groups.dependencies`` knows; their reads are
``groups.selectors`` (``rule_words``, ``rule_group_choices``).
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models.options import Options
from django.http import HttpRequest, JsonResponse, QueryDict
from django.urls import URLPattern, path, reverse

from audiences.catalogue import SAMPLE_MEMBERS, club_fields
from audiences.conditions import as_condition_list, parse_conditions
from audiences.selectors import preview
from audiences.services import check_conditions
from audiences.widgets import RuleBuilderUrls
from groups import selectors
from groups.models import MembersGroup
from loyalty.admin import ClubScopedAdmin, admin_id, error_texts, managed_clubs, refusal_messages
from loyalty.api.fields import UNSTORABLE, unstorable
from loyalty.errors import DomainError
from loyalty.models import Club

# Who may use the builder: anyone who may add, change or view groups or audiences.
BUILDER_PERMISSIONS = [
    f"{app}.{action}_{model}"
    for app, model in (("groups", "membersgroup"), ("audiences", "audience"))
    for action in ("add", "change", "view")
]


def url_prefix(opts: Options[Any]) -> str:
    """The start of the names of a model admin's URLs."""
    return f"{opts.app_label}_{opts.model_name}"


def builder_urls() -> RuleBuilderUrls:
    """The endpoints that the builder of the group and audience forms alike reads: the
    members groups admin's (a ``RuleBuilderAdmin``)."""
    prefix = "admin:" + url_prefix(MembersGroup._meta)
    return RuleBuilderUrls(
        catalogue=reverse(f"{prefix}_rule_catalogue"), preview=reverse(f"{prefix}_preview")
    )


class RuleBuilderAdmin(ClubScopedAdmin):
    """A club-scoped admin with the rule builder's two JSON endpoints among its URLs."""

    def get_urls(self) -> list[URLPattern]:
        prefix = url_prefix(self.opts)
        urls = [
            path(
                "preview/", self.admin_site.admin_view(self.preview_view), name=f"{prefix}_preview"
            ),
            path(
                "rule-catalogue/",
                self.admin_site.admin_view(self.rule_catalogue_view),
                name=f"{prefix}_rule_catalogue",
            ),
        ]
        # Before the defaults, whose "<path:object_id>/" would take these URLs.
        return [*urls, *super().get_urls()]

    def _club(self, request: HttpRequest, params: QueryDict) -> Club | JsonResponse:
        """The managed club the request names, or the answer refusing it."""
        if not any(request.user.has_perm(permission) for permission in BUILDER_PERMISSIONS):
            return JsonResponse({"error": "You may not edit groups or audiences."}, status=403)
        club_id = admin_id(params.get("club"))
        club = None if club_id is None else managed_clubs(request).filter(pk=club_id).first()
        if club is None:
            return JsonResponse({"error": "Choose one of your clubs first."}, status=400)
        return club

    def rule_catalogue_view(self, request: HttpRequest) -> JsonResponse:
        """The property keys and consents found in the club's members, and the groups a
        rule of the given group (``group``) or audience (``audience``) may name."""
        if request.method != "GET":
            return JsonResponse({"error": "Read the catalogue with GET."}, status=405)
        club = self._club(request, request.GET)
        if isinstance(club, JsonResponse):
            return club
        fields, sampled = club_fields(club)
        groups = selectors.rule_group_choices(
            club.pk,
            group_id=admin_id(request.GET.get("group")),
            audience_id=admin_id(request.GET.get("audience")),
        )
        return JsonResponse(
            {
                "fields": [choice.as_json() for choice in fields],
                "groups": [{"id": pk, "name": name} for pk, name in groups],
                "sampled": sampled,
                "sample_limit": SAMPLE_MEMBERS,
            }
        )

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """Count who matches conditions typed in the form, before saving, and say the rule
        in words; for an existing group (``group``) also who would join and leave it.

        With ``count=0`` the rule is only checked and said in words, which costs no scan
        of the club: what the builder asks when a page opens, before anything is edited.
        """
        if request.method != "POST":
            return JsonResponse({"error": "Send the conditions with POST."}, status=405)
        club = self._club(request, request.POST)
        if isinstance(club, JsonResponse):
            return club
        try:
            # As the API takes them: a single condition object is a one-element array.
            conditions = as_condition_list(json.loads(request.POST.get("conditions") or "[]"))
        except (ValueError, RecursionError):
            return JsonResponse({"error": "The conditions are not valid JSON."}, status=400)
        if code := unstorable(conditions):
            return JsonResponse({"error": UNSTORABLE[code]}, status=422)
        group_id = admin_id(request.POST.get("group"))
        audience_id = admin_id(request.POST.get("audience"))
        try:
            if request.POST.get("count") == "0":
                node = check_conditions(
                    club.pk, conditions, members_group_id=group_id, audience_id=audience_id
                )
                return JsonResponse({"words": selectors.rule_words(club.pk, node)})
            result = preview(
                club=club,
                conditions=conditions,
                members_group_id=group_id,
                audience_id=audience_id,
            )
        except DomainError as refusal:
            return _refused(refusal)
        node = parse_conditions(conditions)
        body: dict[str, Any] = {"count": result.count, "words": selectors.rule_words(club.pk, node)}
        if result.impact is not None:
            body.update(joining=result.impact.joining, leaving=result.impact.leaving)
        return JsonResponse(body)


def _refused(refusal: DomainError) -> JsonResponse:
    """A refusal as one message, and each error of the conditions with its place in them
    (``path``: indexes and keys, as in the API's ``details``)."""
    messages = [message for _field, message in refusal_messages(refusal)]
    details = (refusal.details or {}).get("conditions")
    errors = (
        []
        if details is None
        else [{"path": list(keys), "message": text} for keys, text in error_texts(details)]
    )
    return JsonResponse({"error": " ".join(messages), "errors": errors}, status=422)
