"""Accepting usage events: validate, resolve, store durably, answer in Lago's shape."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.audit.service import entry
from gateway.errors import UpstreamUnavailable, ValidationFailed
from gateway.integrations.lago.client import LagoError
from gateway.meters.metering import Delta
from gateway.meters.service import Metered, Meters
from gateway.usage import metrics
from gateway.usage.lookups import Known, LagoLookups
from gateway.usage.outbox import OutboxWriter, RowsRefused
from gateway.usage.parsing import Errors, EventRules, ParsedEvent, parse_event
from gateway.usage.schemas import DEFAULT_MAX_FUTURE_SECONDS
from gateway.usage.store import OutboxRow

DEFAULT_EVENT_MAX_BYTES = 8192

LAGO_ID_NAMESPACE = uuid.UUID("6f1c1d52-3a57-4f5e-9a55-0d1e35a1b7a1")


_LAGO_ID_NAMESPACE = LAGO_ID_NAMESPACE.bytes
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def lago_id(external_subscription_id: str, transaction_id: str) -> str:
    """``uuid5(LAGO_ID_NAMESPACE, sub NUL tx)``, spelled out: ``uuid.uuid5`` is slow per event."""
    name = f"{external_subscription_id}\x00{transaction_id}".encode()
    h = hashlib.sha1(_LAGO_ID_NAMESPACE + name, usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_seconds(value: float) -> str:
    """Lago's ``iso8601(3)``: ``2025-09-01T00:00:00.123Z`` (per event: kept cheap)."""
    fraction, whole = math.modf(value)
    micros = round(fraction * 1e6)  # as datetime.fromtimestamp rounds, then truncated to ms
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    return f"{_iso_second(int(whole))}.{micros // 1000:03d}Z"


def lago_shape(payload: dict[str, Any], created_at: str) -> dict[str, Any]:
    """The event object Lago answers with, for a payload the gateway stores."""
    sub, tx = payload["external_subscription_id"], payload["transaction_id"]
    return {
        "lago_id": lago_id(sub, tx),
        "transaction_id": tx,
        "lago_customer_id": None,
        "code": payload["code"],
        "timestamp": iso_seconds(float(payload["timestamp"])),
        "precise_total_amount_cents": payload.get("precise_total_amount_cents"),
        "properties": payload.get("properties") or {},
        "lago_subscription_id": None,
        "external_subscription_id": sub,
        "created_at": created_at,
    }


class UsageIngest:
    """Validates events and stores them in the outbox; Lago is only consulted through caches."""

    def __init__(
        self,
        writer: OutboxWriter,
        lookups: LagoLookups,
        batch_max: int,
        *,
        event_max_bytes: int = DEFAULT_EVENT_MAX_BYTES,
        max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS,
        meters: Meters | None = None,
    ) -> None:
        self._writer = writer
        self._meters = meters
        self._lookups = lookups
        self.batch_max = batch_max
        self._event_max_bytes = event_max_bytes
        self._max_future_seconds = max_future_seconds

    async def accept(
        self, raw_events: Sequence[Any], *, actor: str, batch: bool
    ) -> list[dict[str, Any]]:
        """Store the events all-or-nothing and return them in Lago's shape, or raise 422."""
        received_at = time.time()
        audit: dict[str, Any] = {
            "actor": actor,
            "action": "usage.events.batch" if batch else "usage.events.create",
            "target": None,
        }
        try:
            events, needs_check, payloads = await self._validate(raw_events, received_at, batch)
        except ValidationFailed:
            metrics.EVENTS_REJECTED.inc(len(raw_events))
            await self._writer.submit([], _rejected(audit, len(raw_events)))
            raise
        rows, unique = _rows(events, needs_check, payloads, actor)
        audit["target"] = rows[0].transaction_id if len(rows) == 1 else None
        audit["target_ids"] = [row.transaction_id for row in rows]
        metered = await self._metered(rows, [events[i] for i in unique])
        try:
            stored = await self._writer.submit(rows, _audit_fields(audit), metered)
        except RowsRefused as exc:
            # The database refused this request's own data (its group's others committed);
            # the rejection is audited without the ids, which may be what it refused.
            metrics.EVENTS_REJECTED.inc(len(raw_events))
            rejected = _rejected({**audit, "target": None, "target_ids": None}, len(raw_events))
            with contextlib.suppress(RowsRefused):
                await self._writer.submit([], rejected)
            root = "events" if batch else "event"
            raise ValidationFailed(details={root: ["value_is_invalid"]}) from exc
        if not stored.accepted:
            metrics.EVENTS_REJECTED.inc(len(raw_events))
            clash = {"transaction_id": ["value_already_exist"]}
            raise ValidationFailed(
                details={str(unique[i]): clash for i in stored.clashes} if batch else clash
            )
        metrics.EVENTS_ACCEPTED.inc(len(rows) - len(stored.duplicates))
        metrics.EVENTS_DUPLICATE.inc(len(raw_events) - len(rows) + len(stored.duplicates))
        created_at = iso_seconds(received_at)
        # A duplicate answers with the stored event (its stamped timestamp), not this copy.
        stored_copy = {rows[i].key: payload for i, payload in stored.duplicates.items()}
        return [
            lago_shape(
                orjson.loads(stored_copy[key]) if key in stored_copy else e.body(), created_at
            )
            for e in events
            for key in [(e.external_subscription_id or "", e.transaction_id)]
        ]

    async def _metered(self, rows: list[OutboxRow], events: list[ParsedEvent]) -> list[Delta]:
        """What the rows add to meters (none when nothing is metered)."""
        if self._meters is None or not self._meters.enabled:
            return []
        return await self._meters.deltas(
            [
                Metered(
                    row.external_subscription_id,
                    row.transaction_id,
                    row.code,
                    float(event.timestamp),
                    event.properties,
                )
                for row, event in zip(rows, events, strict=True)
            ]
        )

    async def _validate(
        self, raw_events: Sequence[Any], received_at: float, batch: bool
    ) -> tuple[list[ParsedEvent], set[int], list[str]]:
        if batch and not raw_events:
            raise ValidationFailed(details={"events": ["no_events"]})
        if len(raw_events) > self.batch_max:
            raise ValidationFailed(details={"events": ["too_many_events"]})
        errors: dict[int, Errors] = {}
        parsed: list[ParsedEvent] = []
        rules = EventRules(self._lookups.metric_rules, self._max_future_seconds)
        for index, raw in enumerate(raw_events):
            result = parse_event(raw, received_at, rules)
            if isinstance(result, dict):
                errors[index] = result
            else:
                parsed.append(result)
        if errors:
            raise _failed(errors, batch)
        parsed = await self._resolve_customers(parsed, errors)
        needs_check = await self._check_known(parsed, errors)
        _check_repeats(parsed, errors)
        payloads = _payloads(parsed, self._event_max_bytes, errors)
        if errors:
            raise _failed(errors, batch)
        return parsed, needs_check, payloads

    async def _resolve_customers(
        self, events: list[ParsedEvent], errors: dict[int, Errors]
    ) -> list[ParsedEvent]:
        resolved = []
        for index, event in enumerate(events):
            if event.external_subscription_id is None and event.external_customer_id is not None:
                try:
                    sub, reason = await self._lookups.active_subscription_of(
                        event.external_customer_id
                    )
                except LagoError as exc:
                    raise UpstreamUnavailable(
                        "Lago is unreachable: send external_subscription_id, or retry"
                    ) from exc
                if sub is None:
                    errors[index] = {"external_customer_id": [reason or "invalid_value"]}
                else:
                    event = event.with_subscription(sub)
            resolved.append(event)
        return resolved

    async def _check_known(self, events: list[ParsedEvent], errors: dict[int, Errors]) -> set[int]:
        codes = {
            e.code: await self._lookups.metric(e.code) for e in {e.code: e for e in events}.values()
        }
        subs: dict[str, Known] = {}
        missing: list[str] = []
        for e in events:
            sub = e.external_subscription_id
            if sub and sub not in subs:
                known = self._lookups.cached_subscription(sub)
                if known is None:
                    missing.append(sub)
                    known = Known.UNSURE
                subs[sub] = known
        if missing:
            # Concurrently: a cold cache must not cost one Lago round trip per subscription.
            answers = await asyncio.gather(*(self._lookups.subscription(s) for s in missing))
            subs.update(zip(missing, answers, strict=True))
        needs_check = set()
        for index, e in enumerate(events):
            sub_known = subs.get(e.external_subscription_id or "", Known.YES)
            if codes[e.code] is Known.NO:
                errors.setdefault(index, {})["code"] = ["billable_metric_not_found"]
            if sub_known is Known.NO:
                errors.setdefault(index, {})["external_subscription_id"] = [
                    "subscription_not_found"
                ]
            if Known.UNSURE in (codes[e.code], sub_known):
                needs_check.add(index)
        return needs_check


def _check_repeats(events: list[ParsedEvent], errors: dict[int, Errors]) -> None:
    """Identical repeats inside one request are fine; the same key with other content is not."""
    first: dict[tuple[str | None, str], int] = {}
    for index, e in enumerate(events):
        seen = first.setdefault((e.external_subscription_id, e.transaction_id), index)
        if seen != index and events[seen].fingerprint() != e.fingerprint():
            errors.setdefault(index, {})["transaction_id"] = ["value_already_exist"]


def _payloads(events: list[ParsedEvent], max_bytes: int, errors: dict[int, Errors]) -> list[str]:
    """Each event's payload, as Lago will receive it; an event over ``max_bytes`` is refused."""
    payloads: list[str] = []
    for index, e in enumerate(events):
        data = e.payload_bytes()
        if len(data) > max_bytes:
            errors.setdefault(index, {})["event"] = ["value_is_too_long"]
        payloads.append(data.decode())
    return payloads


def _rows(
    events: list[ParsedEvent], needs_check: set[int], payloads: list[str], actor: str
) -> tuple[list[OutboxRow], list[int]]:
    """One row per distinct key, and for each row the index of the event it came from."""
    rows: list[OutboxRow] = []
    origin: list[int] = []
    seen: set[tuple[str, str]] = set()
    for index, e in enumerate(events):
        assert e.external_subscription_id is not None
        key = (e.external_subscription_id, e.transaction_id)
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            OutboxRow(
                e.external_subscription_id,
                e.transaction_id,
                e.code,
                payloads[index],
                e.fingerprint(),
                int(index in needs_check),
                actor,
            )
        )
        origin.append(index)
    return rows, origin


def _failed(errors: dict[int, Errors], batch: bool) -> ValidationFailed:
    if batch:
        return ValidationFailed(details={str(i): errs for i, errs in sorted(errors.items())})
    return ValidationFailed(details=errors[min(errors)])


def _audit_fields(audit: dict[str, Any]) -> dict[str, Any]:
    return entry(
        actor=audit["actor"],
        action=audit["action"],
        outcome="accepted",
        target=audit.get("target"),
        target_ids=audit.get("target_ids"),
    )


def _rejected(audit: dict[str, Any], count: int) -> dict[str, Any]:
    row = _audit_fields(audit)
    row.update(outcome="rejected", status=422, detail={"events": count})
    return row
