"""Request parsing and JSON responses shared by every endpoint."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest, LagoError
from .state import EmulatorState, Record

PER_PAGE = 100


class JSONResponse(Response):
    """A JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(content: Any, status: int = 200) -> JSONResponse:
    """Answer ``content`` as JSON."""
    return JSONResponse(content, status_code=status)


def state_of(request: Request) -> EmulatorState:
    """The emulator state the app was created with."""
    state: EmulatorState = request.app.state.lago
    return state


async def read_json(request: Request) -> Any:
    """The request body as JSON; 400 when it does not parse."""
    body = await request.body()
    if not body:
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Rails' ParseError, rendered by ActionDispatch::PublicExceptions.
        raise LagoError(400, {"status": 400, "error": "Bad Request"}) from exc


def parameter_missing(key: str) -> BadRequest:
    """Rails 8's ``ActionController::ParameterMissing``, rendered by ``bad_request_error``."""
    return BadRequest(f"param is missing or the value is empty or invalid: {key}")


def _present(value: Any) -> bool:
    """ActiveSupport's ``present?`` for a JSON value."""
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value != {} and value != []


def require_root(body: Any, key: str) -> dict[str, Any]:
    """``params.require(key).permit(...)``: 400 when absent or blank; 500 when present but
    not an object (``permit`` is then called on a scalar)."""
    value = body.get(key) if isinstance(body, dict) else None
    if isinstance(value, dict) and value:
        return value
    if _present(value) or value is False:
        raise LagoError(500, {"status": 500, "error": "Internal Server Error"})
    raise parameter_missing(key)


async def read_root(request: Request, key: str) -> dict[str, Any]:
    """The object under the body's root ``key``; Rails answers 400 when it is absent."""
    body = await read_json(request)
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, dict) or not value:
        raise parameter_missing(key)
    return value


async def error_response(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for ``LagoError``."""
    assert isinstance(exc, LagoError)
    return ok(exc.body, exc.status)


def query_list(request: Request, name: str) -> list[str]:
    """A Rails array query parameter, ``name[]=a&name[]=b`` or ``name=a``."""
    return request.query_params.getlist(f"{name}[]") or request.query_params.getlist(name)


def _positive_int(request: Request, name: str, default: int) -> int:
    try:
        return max(1, int(request.query_params.get(name, default)))
    except ValueError:
        return default


def paginate(request: Request, root: str, records: list[Record]) -> JSONResponse:
    """One page of ``records`` under ``root`` with Lago's ``meta``."""
    page = _positive_int(request, "page", 1)
    per_page = _positive_int(request, "per_page", PER_PAGE)
    total = len(records)
    total_pages = -(-total // per_page)
    chunk = records[(page - 1) * per_page : page * per_page]
    meta = {
        "current_page": page if total else 0,
        "next_page": page + 1 if page < total_pages else None,
        "prev_page": page - 1 if page > 1 else None,
        "total_pages": total_pages,
        "total_count": total,
    }
    return ok({root: chunk, "meta": meta})
