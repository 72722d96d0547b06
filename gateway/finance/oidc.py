"""Finance sign-in through the company's OpenID Connect provider (Authlib's Starlette client).

The authorization code flow with PKCE (S256), a state and a nonce kept in the session; the
ID token is verified by Authlib against the provider's published keys (signature, issuer,
audience, expiry, nonce). Only a person with an account here may sign in: the account
linked to the identity's subject, or the one whose username is its verified email, which
is then linked for good. The role is the account's, never a claim's.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError  # Authlib's ID token checks (joserfc, its dependency)

from gateway.config import Settings
from gateway.finance.endpoints import base_of, page, runtime_of, safe_next
from gateway.finance.pages.sign_in import audit_sign_in
from gateway.logging import get_logger
from gateway.users import service as users
from gateway.users.service import Refusal

# Authlib 1.9 prefers the httpx2 fork: importing it with httpx (the project's client) warns,
# after setting that warning to "always" process-wide; both stay inside this block.
with warnings.catch_warnings():
    from authlib import deprecate

    warnings.simplefilter("ignore", deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App

log = get_logger(__name__)
router = APIRouter()
NEXT = "oidc_next"


def provider(settings: Settings) -> StarletteOAuth2App | None:
    """The configured provider's client, or None when OIDC is off."""
    issuer, client_id = settings.oidc_issuer.rstrip("/"), settings.oidc_client_id
    secret = settings.oidc_client_secret.get_secret_value()
    if not (issuer and client_id and secret):
        return None
    oauth = OAuth()
    oauth.register(
        "company",
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_id=client_id,
        client_secret=secret,
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    client: StarletteOAuth2App = oauth.create_client("company")
    return client


def _client(request: Request) -> StarletteOAuth2App | None:
    found: StarletteOAuth2App | None = getattr(request.app.state, "oidc", None)
    return found


@router.get("/login/oidc", include_in_schema=False)
async def start(request: Request, next: str | None = None) -> Response:
    client = _client(request)
    if client is None:
        return RedirectResponse(f"{base_of(request)}/login", status_code=303)
    request.session[NEXT] = safe_next(request, next)
    callback = str(request.url_for("oidc_callback"))
    try:
        answer: Response = await client.authorize_redirect(request, callback)
    except (OAuthError, OSError, ValueError) as exc:
        log.warning("finance.oidc.unavailable", error=type(exc).__name__)
        return _refused(request, "The company sign-in is not reachable; try again shortly.", 503)
    return answer


@router.get("/login/oidc/callback", name="oidc_callback", include_in_schema=False)
async def callback(request: Request) -> Response:
    client, runtime = _client(request), runtime_of(request)
    if client is None:
        return RedirectResponse(f"{base_of(request)}/login", status_code=303)
    try:
        token: dict[str, Any] = await client.authorize_access_token(request)
    except (OAuthError, JoseError, OSError, ValueError) as exc:
        reason = getattr(exc, "error", None) or type(exc).__name__
        await audit_sign_in(runtime, "finance", "rejected", "oidc", str(reason))
        return _refused(request, "The company sign-in did not complete; try again.", 401)
    claims = token.get("userinfo") or {}
    subject = f"{client.server_metadata.get('issuer', '')} {claims.get('sub', '')}"
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    verified = claims.get("email_verified") is True
    outcome = await users.sign_in_oidc(runtime.database, subject, email, verified)
    target = email or str(claims.get("sub", ""))
    if isinstance(outcome, Refusal):
        await audit_sign_in(runtime, "finance", "rejected", target, outcome.reason)
        return _refused(request, "No active account here matches that company sign-in.", 403)
    await audit_sign_in(runtime, outcome.actor, "success", target, None)
    wanted = request.session.get(NEXT)
    request.session.clear()
    request.session.update({"user_id": outcome.id, "user_version": outcome.session_version})
    return RedirectResponse(safe_next(request, wanted), status_code=303)


def _refused(request: Request, message: str, status: int) -> Response:
    next_ = str(request.session.pop(NEXT, ""))
    return page(request, "login.html", None, status=status, next=next_, username="", error=message)
