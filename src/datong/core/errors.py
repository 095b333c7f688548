"""The domain error hierarchy.

Services raise these; the API maps each class to one HTTP status (``api/errors.py``) and the CLI
prints them. Every error names the field it is about, when there is one, and a reason a person can act on.
"""

from __future__ import annotations

from typing import Any


class DatongError(Exception):
    """Base of every error datong raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.detail:
            out["detail"] = self.detail
        return out


class ValidationFailed(DatongError):
    """Input is malformed or breaks a rule. Nothing was changed."""

    code = "invalid"


class NotFound(DatongError):
    """The object does not exist, or the caller may not know it exists."""

    code = "not_found"


class Forbidden(DatongError):
    """The caller is known but has no right to this object or action."""

    code = "forbidden"


class Unauthenticated(DatongError):
    """No valid credentials."""

    code = "unauthenticated"


class Conflict(DatongError):
    """The request clashes with the current state (an idempotency key reused with another body, ...)."""

    code = "conflict"


class ConfigurationError(DatongError):
    """The deployment is missing something it needs to start (a key, a database)."""

    code = "configuration"
