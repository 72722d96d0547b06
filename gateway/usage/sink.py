"""Where forwarded events go, and how Lago's answer to one batch is read.

An answer is one of four kinds (``Verdict``), and the forwarder acts on the kind:

    DELIVERED   2xx: Lago stored every event of the request.
    INDEXED     422 whose ``error_details`` are keyed by batch index: only those events are
                named (Lago's ``Events::CreateBatchService`` rolls the whole batch back).
    UNNAMED     an answer about the request that names no event: 413 from a proxy's body
                limit, 400, a 422 without indexes (``no_events``, ``too_many_events``), any
                other 4xx. Repeating it cannot help; splitting the batch finds the culprit.
    UNWELL      Lago as a whole is not answering: 5xx, 429, 401/403, 408, a timeout, a
                refused or reset connection. A 5xx may still be about this batch (an event
                Lago crashes on): the forwarder tells the two apart by splitting the batch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from gateway.integrations.lago.client import LagoClient, LagoUnavailable

_UNWELL_4XX = frozenset({401, 403, 408, 429})
DUPLICATE = {"transaction_id": ["value_already_exist"]}


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    INDEXED = "indexed"
    UNNAMED = "unnamed"
    UNWELL = "unwell"


class UsageSink(Protocol):
    """Where forwarded events go: Lago's REST batch endpoint today, a Kafka topic tomorrow."""

    async def send_batch(self, payloads: list[str]) -> SinkResult: ...


@dataclass
class SinkResult:
    """``errors`` maps a batch index to Lago's validation details for that event."""

    verdict: Verdict
    status: int | None = None
    errors: dict[int, Any] = field(default_factory=dict)
    retry_after: float | None = None
    reason: str | None = None
    answered: bool = True  # False: no HTTP answer at all (refused, reset, timed out)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.DELIVERED


class LagoBatchSink:
    """Sends to ``POST /api/v1/events/batch``; the body is the stored payloads, byte for byte."""

    def __init__(self, lago: LagoClient) -> None:
        self._lago = lago

    async def send_batch(self, payloads: list[str]) -> SinkResult:
        body = ('{"events":[' + ",".join(payloads) + "]}").encode()
        try:
            response = await self._lago.send("POST", "/events/batch", body=body)
        except LagoUnavailable as exc:
            return SinkResult(Verdict.UNWELL, reason=exc.reason, answered=False)
        return judge(response.status_code, response.content, response.headers, len(payloads))


def judge(status: int, content: bytes, headers: Any, size: int) -> SinkResult:
    """Lago's answer to a batch of ``size`` events, as a verdict."""
    if status < 300:
        return SinkResult(Verdict.DELIVERED, status=status)
    reason = _reason(status, content)
    if status >= 500 or status in _UNWELL_4XX:
        retry_after = _retry_after(headers.get("retry-after"))
        return SinkResult(Verdict.UNWELL, status=status, retry_after=retry_after, reason=reason)
    if status == 422:
        errors = _indexed_errors(content, size)
        if errors is not None:
            return SinkResult(Verdict.INDEXED, status=422, errors=errors, reason=reason)
    return SinkResult(Verdict.UNNAMED, status=status, reason=reason)


def _reason(status: int, content: bytes) -> str:
    """What Lago said, for the dead letter: its error body when it is Lago's JSON."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and ("error_details" in body or "code" in body):
        said = {k: body[k] for k in ("code", "error_details") if k in body}
        return f"Lago answered {status}: {orjson.dumps(said).decode()}"
    return f"Lago answered {status}"


def _retry_after(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _indexed_errors(content: bytes, size: int) -> dict[int, Any] | None:
    """``error_details`` keyed by batch index, or None when the answer names no event."""
    try:
        details = orjson.loads(content).get("error_details")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(details, dict) or not details:
        return None
    if all(isinstance(key, str) and key.isdigit() and int(key) < size for key in details):
        return {int(key): value for key, value in details.items()}
    if size == 1 and "events" not in details:
        return {0: details}  # a one-event request: whatever it names is about that event
    return None


def is_duplicate(details: Any) -> bool:
    """Lago's ``value_already_exist`` on the transaction id, and nothing else."""
    return bool(details == DUPLICATE)
