"""Signing in and out of the finance pages with a username and password.

Refusals say only that the username and password do not match an active account. Five
wrong passwords in a row lock the account (``gateway.users.service``); each process also
slows a client address after too many failures (``gateway.users.throttle``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.audit.service import record
from gateway.finance.endpoints import base_of, check_csrf, page, runtime_of, safe_next
from gateway.runtime import Runtime
from gateway.users import service as users
from gateway.users.service import Refusal
from gateway.users.throttle import SignInThrottle

router = APIRouter()


@router.get("/login", include_in_schema=False)
async def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", None, next=safe_next(request, next), error=None, username="")


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await check_csrf(request)
    runtime, client = runtime_of(request), client_of(request)
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    username = form.get("username", "").strip().lower()[:64]
    wait = throttle.retry_after(client)
    outcome = (
        Refusal("throttled", datetime.now(UTC) + timedelta(seconds=wait))
        if wait
        else await users.sign_in(runtime.database, username, form.get("password", ""))
    )
    if isinstance(outcome, Refusal):
        if outcome.reason in ("credentials", "disabled"):
            throttle.failed(client)
        await audit_sign_in(runtime, "finance", "rejected", username, outcome.reason)
        return _refused(request, form, outcome)
    throttle.succeeded(client)
    await audit_sign_in(runtime, outcome.actor, "success", username, None)
    request.session.clear()  # a fresh session (and CSRF token) for the signed-in person
    request.session.update({"user_id": outcome.id, "user_version": outcome.session_version})
    return RedirectResponse(safe_next(request, form.get("next")), status_code=303)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refused(request: Request, form: dict[str, str], refusal: Refusal) -> Response:
    if refusal.until is not None:  # locked, or this client slowed down
        wait = int((refusal.until - datetime.now(UTC)).total_seconds())
        minutes = max(1, -(-wait // 60))
        error = f"Too many failed sign-ins. Try again in {minutes} minutes."
        status = 429
    else:
        error = "That username and password do not match an active account."
        status = 401
    return page(
        request,
        "login.html",
        None,
        status=status,
        next=form.get("next", ""),
        username=form.get("username", ""),
        error=error,
    )


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    await check_csrf(request)
    request.session.clear()
    return RedirectResponse(f"{base_of(request)}/login", status_code=303)


async def audit_sign_in(
    runtime: Runtime, actor: str, outcome: str, target: str, reason: str | None
) -> None:
    """Audit one sign-in (``finance.sign_in``): who tried, and why it was refused."""
    async with runtime.database.session() as session:
        detail = {"reason": reason} if reason else None
        record(
            session,
            actor=actor,
            action="finance.sign_in",
            outcome=outcome,
            target=target,
            detail=detail,
        )
        await session.commit()
