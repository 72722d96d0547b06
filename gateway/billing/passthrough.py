"""Calls to Lago on behalf of a caller: reads pass through, writes are audited with the outcome.

A write's audit row records what really happened upstream: ``success``, ``rejected`` (Lago,
or the gateway's own check, refused it: 4xx) or ``unavailable`` (Lago unreachable, timed out
or failing: the caller gets 503 with ``Retry-After``). Lago is called with no database
transaction open; the audit row, and whatever local state ``then`` adds, commit together
once Lago has answered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.service import record
from gateway.billing.payloads import LagoInput, check
from gateway.db import Database
from gateway.errors import GatewayError, ValidationFailed, from_lago
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.logging import get_logger

log = get_logger(__name__)

Params = list[tuple[str, str]]
Then = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Write:
    """Who asked for which change to what: the audit row's identity."""

    actor: str
    action: str
    target: str | None = None
    detail: dict[str, Any] | None = None
    upstream: str | None = "lago"


def segment(value: str) -> str:
    """One URL path segment (external ids may hold any character)."""
    return quote(value, safe="")


def outcome_of(error: GatewayError) -> str:
    """``unavailable`` for a 5xx answer, ``rejected`` for a 4xx."""
    return "unavailable" if error.status >= 500 else "rejected"


async def read(lago: LagoClient, path: str, params: Params | None = None) -> dict[str, Any]:
    """A Lago read answered as Lago answered it (errors in Lago's shape, 503 when down)."""
    try:
        return await lago.call("GET", path, params=params or None)
    except LagoError as exc:
        raise from_lago(exc) from exc


async def write(
    database: Database,
    lago: LagoClient,
    change: Write,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: Params | None = None,
    then: Then | None = None,
) -> dict[str, Any]:
    """Send one write to Lago and audit its outcome; Lago's refusal is raised in Lago's shape."""
    started = time.perf_counter()
    try:
        result = await lago.call(method, path, json=json, params=params or None)
    except LagoError as exc:
        error = from_lago(exc)
        await audit(database, change, error.status, elapsed_ms(started), outcome_of(error))
        raise error from exc
    latency_ms = elapsed_ms(started)
    async with database.session() as session:
        if then is not None:
            await then(session, result)
        record_write(session, change, 200, latency_ms, "success")
        await session.commit()
    return result


async def checked_write(
    database: Database, actor: str, action: str, model: type[LagoInput], params: dict[str, Any]
) -> Write:
    """The audit identity of a create keyed by ``external_id``, once ``params`` fit ``model``.

    A body that does not fit is audited as refused and raised as 422 naming the fields.
    """
    target = params.get("external_id")
    change = Write(actor, action, target if isinstance(target, str) else None)
    try:
        check(model, params)
    except ValidationFailed as exc:
        raise await refuse(database, change, exc) from exc
    return change


async def refuse(database: Database, change: Write, error: GatewayError) -> GatewayError:
    """Audit a request refused before any upstream call; returns ``error`` to raise."""
    local = Write(change.actor, change.action, change.target, change.detail, upstream=None)
    await audit(database, local, error.status, None, outcome_of(error))
    return error


async def audit(
    database: Database, change: Write, status: int, latency_ms: float | None, outcome: str
) -> None:
    """Commit one audit row on its own (for failures: nothing else is written)."""
    async with database.session() as session:
        record_write(session, change, status, latency_ms, outcome)
        await session.commit()
    log.info(f"{change.action}.{outcome}", target=change.target, status=status)


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - started) * 1000


def record_write(
    session: AsyncSession, change: Write, status: int, latency_ms: float | None, outcome: str
) -> None:
    """Add the audit row of ``change`` to the session's transaction."""
    record(
        session,
        actor=change.actor,
        action=change.action,
        outcome=outcome,
        target=change.target,
        upstream=change.upstream,
        status=status,
        latency_ms=latency_ms,
        detail=change.detail,
    )
