"""How claimed events are cut into requests: by count, by bytes, never one id twice."""

from __future__ import annotations

import orjson

from gateway.usage.batching import distinct_ids, pack
from gateway.usage.store import Claimed


def _claimed(i: int, tx: str, sub: str = "sub_1", padding: int = 0) -> Claimed:
    payload = {"transaction_id": tx, "external_subscription_id": sub, "code": "c"}
    if padding:
        payload["note"] = "x" * padding
    return Claimed(i, sub, tx, "c", orjson.dumps(payload).decode(), 0, 0)


def _body(batch: list[Claimed]) -> bytes:
    return ('{"events":[' + ",".join(c.payload for c in batch) + "]}").encode()


def test_distinct_ids_fill_requests_in_order_up_to_the_count() -> None:
    events = [_claimed(i, f"tx-{i}") for i in range(250)]
    batches = pack(events, 100, 1 << 20)
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [c.id for b in batches for c in b] == list(range(250))


def test_one_transaction_id_never_appears_twice_in_a_request() -> None:
    events = [_claimed(2 * i + k, f"gen-{i}", f"sub_{k}") for i in range(150) for k in (0, 1)]
    batches = pack(events, 100, 1 << 20)
    assert all(distinct_ids(b) for b in batches)
    assert sorted(c.id for b in batches for c in b) == list(range(300))
    assert len(batches) == 4  # 300 events, 150 ids twice: as few requests as the rule allows


def test_many_events_with_one_id_each_get_a_request_of_their_own() -> None:
    events = [_claimed(i, "gen-1", f"sub_{i}") for i in range(5)]
    assert [len(b) for b in pack(events, 100, 1 << 20)] == [1] * 5


def test_requests_stay_under_the_byte_limit_and_an_oversized_event_goes_alone() -> None:
    events = [_claimed(i, f"tx-{i}", padding=300) for i in range(40)]
    events.insert(7, _claimed(99, "huge", padding=5000))
    batches = pack(events, 100, 4096)
    for batch in batches:
        assert len(_body(batch)) <= 4096 or [c.transaction_id for c in batch] == ["huge"]
    assert sorted(c.id for b in batches for c in b) == sorted(c.id for c in events)


def test_the_byte_limit_counts_utf8_bytes_not_characters() -> None:
    events = [_claimed(i, f"tx-{i}", padding=0) for i in range(3)]
    wide = [e._replace(payload=e.payload.replace('"c"}', '"' + "é" * 600 + '"}')) for e in events]
    for batch in pack(wide, 100, 2048):
        assert len(_body(batch)) <= 2048
