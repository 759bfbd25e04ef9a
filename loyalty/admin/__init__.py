"""Admin of the tenant app: the club-scoped base every app's admin builds on
(``club_scoped``, re-exported here) and the admin of clubs and API tokens (``clubs``)."""

from loyalty.admin import clubs
from loyalty.admin.club_scoped import (
    ADMIN_SOURCE,
    ClubFilter,
    ClubScopedAdmin,
    IdFilter,
    PrettyJSONField,
    ServiceModelForm,
    actor,
    add_refusal,
    admin_id,
    adopt,
    error_texts,
    managed_clubs,
    refusal_messages,
)

__all__ = [
    "ADMIN_SOURCE",
    "ClubFilter",
    "ClubScopedAdmin",
    "IdFilter",
    "PrettyJSONField",
    "ServiceModelForm",
    "actor",
    "add_refusal",
    "admin_id",
    "adopt",
    "clubs",
    "error_texts",
    "managed_clubs",
    "refusal_messages",
]
