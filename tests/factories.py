"""factory-boy factories; each creates through the services so counts and events stay exact."""

from __future__ import annotations

from typing import Any

import factory
from factory.django import DjangoModelFactory

from groups import services as group_services
from groups.models import MembersGroup
from groups.webhooks.models import WebhookEndpoint
from loyalty import services as loyalty_services
from loyalty.models import Club
from members import services as member_services
from members.models import Member


class ClubFactory(DjangoModelFactory[Club]):
    slug = factory.Sequence(lambda n: f"club-{n}")
    name = factory.Sequence(lambda n: f"Club {n}")

    class Meta:
        model = Club

    @classmethod
    def _create(cls, model_class: type[Club], *args: Any, **kwargs: Any) -> Club:
        return loyalty_services.create_club(
            slug=kwargs["slug"], name=kwargs["name"], timezone_name=kwargs.get("timezone", "UTC")
        )


class MemberFactory(DjangoModelFactory[Member]):
    club = factory.SubFactory(ClubFactory)
    email = factory.Sequence(lambda n: f"member{n}@example.com")
    properties = factory.Dict({"first_name": "Ola", "last_name": "Nordmann"})

    class Meta:
        model = Member

    @classmethod
    def _create(cls, model_class: type[Member], *args: Any, **kwargs: Any) -> Member:
        return member_services.create_member(source="system", **kwargs)


class GroupFactory(DjangoModelFactory[MembersGroup]):
    club = factory.SubFactory(ClubFactory)
    name = factory.Sequence(lambda n: f"Group {n}")
    type = "Color"

    class Meta:
        model = MembersGroup

    @classmethod
    def _create(cls, model_class: type[MembersGroup], *args: Any, **kwargs: Any) -> MembersGroup:
        return group_services.create_group(**kwargs)


class WebhookEndpointFactory(DjangoModelFactory[WebhookEndpoint]):
    club = factory.SubFactory(ClubFactory)
    url = "https://hooks.example.com/members-groups"

    class Meta:
        model = WebhookEndpoint
