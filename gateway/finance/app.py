"""The finance pages as a sub-application mounted at ``/finance``, with its own middleware.

Sessions are Starlette's signed cookie (``GATEWAY_SESSION_SECRET``; a random secret per
process when unset, with a warning: sessions then end on restart and are not shared
between processes), ``HttpOnly``, ``SameSite=Lax``, ``Secure`` when the request came over
https, scoped to ``/finance`` and ending after eight hours. Every page answers with a
strict Content-Security-Policy and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import Settings
from gateway.finance import oidc
from gateway.finance.endpoints import install_error_pages, router
from gateway.finance.pages import credits, customers, revenue, sign_in
from gateway.logging import get_logger
from gateway.users.throttle import SignInThrottle

log = get_logger(__name__)
HERE = Path(__file__).parent
COOKIE = "gateway_finance"
SESSION_SECONDS = 8 * 3600
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SchemeAwareSessions:
    """Session cookies marked ``Secure`` exactly when the request came over https."""

    def __init__(self, app: ASGIApp, secret: str, path: str) -> None:
        common = {
            "secret_key": secret,
            "session_cookie": COOKIE,
            "max_age": SESSION_SECONDS,
            "same_site": "lax",
            "path": path,
        }
        self.plain = SessionMiddleware(app, https_only=False, **common)  # type: ignore[arg-type]
        self.secure = SessionMiddleware(app, https_only=True, **common)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await target(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def session_secret(settings: Settings) -> str:
    secret = settings.session_secret.get_secret_value()
    if not secret:
        log.warning(
            "finance.session_secret.generated",
            hint="set GATEWAY_SESSION_SECRET: sessions end on restart and are per process",
        )
        secret = secrets.token_urlsafe(48)
    return secret


def create_finance_app(
    parent: FastAPI, settings: Settings, mount_path: str = "/finance"
) -> FastAPI:
    """The finance pages; ``parent`` holds the runtime (built in its lifespan)."""
    finance = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    finance.state.parent = parent
    finance.state.sign_in_throttle = SignInThrottle()
    finance.include_router(router)
    finance.include_router(sign_in.router)
    finance.include_router(oidc.router)
    finance.include_router(credits.router)
    finance.include_router(revenue.router)
    finance.include_router(customers.router)
    finance.state.oidc = oidc.provider(settings)
    finance.state.oidc_label = settings.oidc_label if finance.state.oidc else None
    finance.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    install_error_pages(finance)
    finance.add_middleware(SchemeAwareSessions, secret=session_secret(settings), path=mount_path)
    finance.add_middleware(SecurityHeaders)
    return finance
