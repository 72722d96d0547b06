"""The gateway's errors. Each carries its HTTP status and a stable ``code``.

    GatewayError
    ├── BadRequest                400
    ├── Unauthorized              401
    ├── PaymentRequired           402  (not enough allowance or tokens for a hold)
    ├── Forbidden                 403
    ├── NotFound                  404
    ├── NotServed                 405  (a Lago route the gateway does not pass through: use …)
    ├── RequestTimeout            408  (the body stopped arriving; the connection is closed)
    ├── Conflict                  409
    ├── PayloadTooLarge           413
    ├── ValidationFailed          422  (Lago's ``validation_errors`` with ``error_details``)
    ├── UpstreamError             502  (the vendor answered something unusable)
    │   └── UpstreamRejected      4xx  (the vendor refused: its status, code, details pass on)
    └── UpstreamUnavailable       503  (the vendor is down or timed out; ``Retry-After``)

On every surface the body takes Lago's error shape, so Lago SDKs raise their usual
``LagoApiError``: ``{"status", "error", "code", "error_details"}``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson

from gateway.integrations.lago.client import LagoApiError, LagoError, LagoUnavailable

if TYPE_CHECKING:
    from gateway.integrations.stripe.client import StripeError


class GatewayError(Exception):
    """Root of every error the gateway answers with."""

    status = 500
    error = "Internal Server Error"
    code = "internal_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.error)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "error": self.error, "code": self.code}
        if self.details is not None:
            body["error_details"] = self.details
        elif self.message and self.message != self.error:
            body["error_details"] = {"message": self.message}
        return body


class BadRequest(GatewayError):
    """The request cannot be read (not JSON, missing root key)."""

    status = 400
    error = "BadRequest"
    code = "bad_request"


class Unauthorized(GatewayError):
    """No API key, or one the gateway does not know."""

    status = 401
    error = "Unauthorized"
    code = "unauthorized"

    def body(self) -> dict[str, Any]:
        return {"status": 401, "error": "Unauthorized", "code": self.code}


class PaymentRequired(GatewayError):
    """What the request would use is not covered: no allowance left, too few tokens."""

    status = 402
    error = "Payment Required"
    code = "insufficient_credits"


class Forbidden(GatewayError):
    """The API key lacks the scope this route needs."""

    status = 403
    error = "Forbidden"
    code = "forbidden"


class NotFound(GatewayError):
    """The thing asked for does not exist."""

    status = 404
    error = "Not Found"
    code = "not_found"


class RequestTimeout(GatewayError):
    """The request body stopped arriving (or took too long in all); the connection closes."""

    status = 408
    error = "Request Timeout"
    code = "request_timeout"


class Conflict(GatewayError):
    """The request clashes with stored state."""

    status = 409
    error = "Conflict"
    code = "conflict"


class PayloadTooLarge(GatewayError):
    """The body is over the configured size limit."""

    status = 413
    error = "Payload Too Large"
    code = "payload_too_large"


class ValidationFailed(GatewayError):
    """The payload is well-formed JSON but a field is wrong; details name the field."""

    status = 422
    error = "Unprocessable Entity"
    code = "validation_errors"


class UpstreamError(GatewayError):
    """The vendor answered something the gateway cannot use."""

    status = 502
    error = "Bad Gateway"
    code = "upstream_error"


class UpstreamRejected(UpstreamError):
    """The vendor refused the request; its status, code and details pass through unchanged."""

    def __init__(self, status: int, body: dict[str, Any], *, upstream: str = "lago") -> None:
        super().__init__(str(body.get("error") or "Upstream rejected the request"))
        self.status = status
        self.error = str(body.get("error") or "Upstream rejected the request")
        self.code = str(body.get("code") or f"{upstream}_error")
        self.upstream_body = body

    def body(self) -> dict[str, Any]:
        body = dict(self.upstream_body)
        body.setdefault("status", self.status)
        body.setdefault("error", self.error)
        body.setdefault("code", self.code)
        return body


class UpstreamUnavailable(GatewayError):
    """The vendor is unreachable, timed out or overloaded; try again after ``Retry-After``."""

    status = 503
    error = "Service Unavailable"
    code = "upstream_unavailable"

    def __init__(self, message: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class NotServed(GatewayError):
    """A Lago route the gateway deliberately does not pass through; ``error_details`` say why
    (``message``) and what to call instead (``use``). 405 is Lago's own "not allowed" status."""

    status = 405
    error = "Method Not Allowed"
    code = "not_served_by_gateway"

    def __init__(self, message: str, use: str) -> None:
        super().__init__(message, details={"message": message, "use": use})


def rendered(
    error: GatewayError, *extra: tuple[bytes, bytes]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The raw headers and JSON body an error is answered with, wherever it is answered:
    ``content-type``, ``content-length``, ``extra``, then the error's own headers."""
    body = orjson.dumps(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += extra
    headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in error.headers.items()]
    return headers, body


def from_lago(exc: LagoError) -> GatewayError:
    """Translate a Lago client error for the caller: Lago's refusals pass through unchanged."""
    if isinstance(exc, LagoApiError):
        if exc.status in (429, 500, 502, 503, 504):
            return UpstreamUnavailable(
                f"Lago answered {exc.status}", retry_after=math.ceil(exc.retry_after or 5)
            )
        return UpstreamRejected(exc.status, exc.body)
    if isinstance(exc, LagoUnavailable):
        return UpstreamUnavailable(f"Lago is unreachable ({exc.reason})")
    return UpstreamError(str(exc))


def from_stripe(exc: StripeError) -> GatewayError:
    """Stripe's refusal as Lago's ``third_party_error`` (422); unreachable Stripe as 503."""
    # Imported here: the Stripe SDK takes ~0.2 s to import, and the CLI loads this module.
    from gateway.integrations.stripe.client import StripeRejected, StripeUnavailable

    if isinstance(exc, StripeRejected):
        return ValidationFailed(
            exc.message,
            code="third_party_error",
            details={"third_party": "Stripe", "thirdparty_error": exc.code or exc.message},
        )
    retry_after = exc.retry_after if isinstance(exc, StripeUnavailable) else None
    return UpstreamUnavailable(
        "Stripe is unreachable, retry later", retry_after=math.ceil(retry_after or 5)
    )
