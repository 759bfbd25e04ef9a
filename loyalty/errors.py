"""Domain errors: a user-facing message and an HTTP status, rendered by one API handler."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused change. ``details`` is a tree shaped like the input (SPEC section 2)."""

    status = 422
    message = "Invalid parameters"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.message
        self.details = details
        super().__init__(self.message)


class InvalidParameters(DomainError):
    """422 with a ``details`` tree whose leaves are lists of ``{"error", "options"}``."""

    @classmethod
    def field(cls, field: str, code: str, **options: Any) -> InvalidParameters:
        return cls(details={field: [{"error": code, "options": options}]})


class NotAllowed(DomainError):
    """405: the object exists but this operation is never allowed on it."""

    status = 405
