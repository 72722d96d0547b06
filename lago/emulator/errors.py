"""Lago-shaped API errors.

LagoError                    any error answered with Lago's JSON error body
 ├── BadRequest              400, a missing root key or unreadable JSON
 ├── NotFound                404, ``<resource>_not_found``
 ├── MethodNotAllowed        405, a state transition Lago refuses
 └── ValidationFailed        422, ``validation_errors`` with ``error_details``
"""

from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_body(status: int, code: str | None = None, details: Any = None) -> dict[str, Any]:
    """Build Lago's error body for ``status``."""
    body: dict[str, Any] = {"status": status, "error": _REASONS.get(status, "Error")}
    if code is not None:
        body["code"] = code
    if details is not None:
        body["error_details"] = details
    return body


class LagoError(Exception):
    """An error the emulator answers with Lago's JSON error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


class BadRequest(LagoError):
    """400: Rails' ``ParameterMissing`` for an absent root key, or unparseable JSON."""

    def __init__(self, message: str) -> None:
        super().__init__(400, {"status": 400, "error": f"BadRequest: {message}"})


class NotFound(LagoError):
    """404 with ``<resource>_not_found``."""

    def __init__(self, resource: str) -> None:
        super().__init__(404, error_body(404, f"{resource}_not_found"))


class MethodNotAllowed(LagoError):
    """405 with a code naming the refused transition."""

    def __init__(self, code: str) -> None:
        super().__init__(405, error_body(405, code))


class ValidationFailed(LagoError):
    """422 ``validation_errors`` (or another 422 code) with ``error_details``."""

    def __init__(self, details: dict[str, Any], code: str = "validation_errors") -> None:
        super().__init__(422, error_body(422, code, details))


def missing(field: str) -> ValidationFailed:
    """422 ``{field: ["value_is_mandatory"]}``: Rails' ``blank`` error as lago-api's
    ``config/locales/en.yml`` names it."""
    return ValidationFailed({field: ["value_is_mandatory"]})


def invalid(field: str, reason: str = "value_is_invalid") -> ValidationFailed:
    """422 ``{field: [reason]}``."""
    return ValidationFailed({field: [reason]})
