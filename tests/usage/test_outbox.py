"""The group-committed outbox: requests written together stay all-or-nothing one by one."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.audit.service import entry
from gateway.db import Database, DirectConnection
from gateway.usage.outbox import (
    OutboxRow,
    OutboxWriter,
    RowsRefused,
    Stored,
    _is_transient,
    _Request,
    _row_caused,
    _store_new_pg,
)


def _row(sub: str, tx: str, content: str = "a") -> OutboxRow:
    payload = f'{{"transaction_id":"{tx}","external_subscription_id":"{sub}","v":"{content}"}}'
    return OutboxRow(sub, tx, "photo_generation", payload, f"fp-{sub}-{tx}-{content}", 0, "test")


@pytest.fixture(params=[1, 3], ids=["1-writer", "3-writers"])
async def writer(request: pytest.FixtureRequest, database: Database) -> AsyncIterator[OutboxWriter]:
    outbox = OutboxWriter(database, writers=request.param)
    await outbox.start()
    try:
        yield outbox
    finally:
        await outbox.stop()


async def _submit(writer: OutboxWriter, rows: list[OutboxRow]) -> Stored:
    audit = entry(actor="test", action="usage.events.batch", outcome="accepted")
    return await writer.submit(rows, audit)


async def _stored(database: Database) -> dict[tuple[str, str], str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT external_subscription_id, transaction_id, fingerprint FROM usage_events")
        )
        return {(r[0], r[1]): r[2] for r in rows}


async def test_a_clashing_request_in_a_group_takes_back_only_its_own_rows(
    writer: OutboxWriter, database: Database
) -> None:
    assert (await _submit(writer, [_row("s1", "old")])).accepted
    # Submitted together, so written as one group (one transaction).
    results = await asyncio.gather(
        _submit(writer, [_row("s1", "a1"), _row("s1", "a2")]),
        _submit(writer, [_row("s1", "b1"), _row("s1", "old", content="changed")]),
        _submit(writer, [_row("s2", "c1"), _row("s1", "old")]),
    )
    assert [r.accepted for r in results] == [True, False, True]
    assert results[1].clashes.keys() == {1}
    assert results[2].duplicates.keys() == {1}
    stored = await _stored(database)
    assert set(stored) == {("s1", "old"), ("s1", "a1"), ("s1", "a2"), ("s2", "c1")}
    assert stored[("s1", "old")] == "fp-s1-old-a"
    async with database.engine.connect() as conn:
        outcomes = (
            await conn.execute(text("SELECT outcome FROM audit_entries ORDER BY id"))
        ).scalars()
        assert sorted(outcomes) == ["accepted", "accepted", "accepted", "rejected"]


async def test_concurrent_copies_of_one_key_store_it_once(
    writer: OutboxWriter, database: Database
) -> None:
    same = await asyncio.gather(*(_submit(writer, [_row("s1", "k")]) for _ in range(10)))
    assert all(r.accepted for r in same)
    assert sum(not r.duplicates for r in same) == 1  # the others see the stored copy
    changed = await asyncio.gather(
        *(_submit(writer, [_row("s1", "j", content=str(i))]) for i in range(5))
    )
    assert sum(r.accepted for r in changed) == 1  # the first wins; the others clash with it
    stored = await _stored(database)
    assert set(stored) == {("s1", "k"), ("s1", "j")}


def _request(rows: list[OutboxRow]) -> _Request:
    audit = entry(actor="test", action="usage.events.create", outcome="accepted")
    future = asyncio.get_running_loop().create_future()
    return _Request(rows, audit, future, {row.key for row in rows})


async def _count(database: Database, table: str) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_the_one_statement_path_stores_all_or_refuses_all(
    backend: str, database: Database
) -> None:
    """PostgreSQL's fast path: a group of new keys lands with its audit rows; a group with any
    stored key stores nothing at all (not the other requests' rows, not the audit rows)."""
    if backend != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    direct = DirectConnection(database.url)
    try:
        conn = await direct.get()
        new = [_request([_row("s1", "a")]), _request([_row("s1", "b"), _row("s2", "c")])]
        assert await _store_new_pg(conn, new, 1)
        assert set(await _stored(database)) == {("s1", "a"), ("s1", "b"), ("s2", "c")}
        assert await _count(database, "audit_entries") == 2

        mixed = [_request([_row("s3", "d")]), _request([_row("s1", "a", content="changed")])]
        assert not await _store_new_pg(conn, mixed, 1)
        assert ("s3", "d") not in await _stored(database)
        assert await _count(database, "audit_entries") == 2
        assert await _store_new_pg(conn, [_request([_row("s3", "d")])], 1)  # the connection is fine
    finally:
        await direct.release()


def _pg_error(cls: type[psycopg.Error]) -> psycopg.Error:
    return cls("test")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (_pg_error(psycopg.errors.AdminShutdown), True),
        (_pg_error(psycopg.errors.DeadlockDetected), True),
        (_pg_error(psycopg.errors.SerializationFailure), True),
        (_pg_error(psycopg.errors.UniqueViolation), False),
        (_pg_error(psycopg.errors.UndefinedTable), False),
        (DBAPIError("INSERT", {}, sqlite3.OperationalError("database is locked")), True),
        (DBAPIError("INSERT", {}, _pg_error(psycopg.errors.DeadlockDetected)), True),
        (DBAPIError("INSERT", {}, _pg_error(psycopg.errors.UniqueViolation)), False),
        (ValueError("not a database error"), False),
    ],
)
def test_which_failures_get_another_try(error: Exception, transient: bool) -> None:
    assert _is_transient(error) is transient


def _culprit(kind: str) -> OutboxRow:
    """A row validation would never let through, for tests that bypass it."""
    if kind == "nul":
        return _row("s1", "bad\x00tx")  # PostgreSQL's text refuses NUL; SQLite keeps it
    return _row("s1", "bad")._replace(payload=None)  # type: ignore[arg-type]  # NOT NULL


def _watch_groups(monkeypatch: pytest.MonkeyPatch, writer: OutboxWriter) -> list[int]:
    """The size of every group the writer tries to store, in order."""
    sizes: list[int] = []
    store = writer._store

    async def watched(group: list[_Request], *args: Any) -> list[Stored]:
        sizes.append(len(group))
        return await store(group, *args)

    monkeypatch.setattr(writer, "_store", watched)
    return sizes


async def _outcomes(writer: OutboxWriter, requests: list[list[OutboxRow]]) -> list[str]:
    answers = await asyncio.gather(
        *(_submit(writer, rows) for rows in requests), return_exceptions=True
    )
    outcomes = []
    for answer in answers:
        if isinstance(answer, RowsRefused):
            outcomes.append("refused")
        elif isinstance(answer, Stored):
            outcomes.append("stored" if answer.accepted else "clash")
        else:
            raise AssertionError(f"unexpected {answer!r}")
    return outcomes


@pytest.mark.parametrize("kind", ["nul", "null_payload"])
async def test_a_row_the_database_refuses_fails_only_its_own_request(
    writer: OutboxWriter,
    database: Database,
    backend: str,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The group (one statement, one transaction) fails; split, every other request commits."""
    sizes = _watch_groups(monkeypatch, writer)
    valid = [[_row("s1", f"ok{i}")] for i in range(4)]
    requests = [*valid[:2], [_row("s2", "with_culprit"), _culprit(kind)], *valid[2:]]

    outcomes = await _outcomes(writer, requests)

    refused = kind == "null_payload" or backend == "postgres"
    assert outcomes == ["stored", "stored", "refused" if refused else "stored", "stored", "stored"]
    assert sizes[0] == 5  # written as one group first
    stored = set(await _stored(database))
    assert {("s1", f"ok{i}") for i in range(4)} <= stored
    assert (("s2", "with_culprit") in stored) is not refused  # the request is all-or-nothing
    assert await _count(database, "audit_entries") == (4 if refused else 5)


async def test_the_split_finds_each_culprit_and_keeps_every_other_request(
    writer: OutboxWriter, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _watch_groups(monkeypatch, writer)
    requests = [[_row("s1", f"ok{i}")] for i in range(9)]
    requests[2] = [_culprit("null_payload")._replace(transaction_id="bad2")]
    requests[7] = [_culprit("null_payload")._replace(transaction_id="bad7")]

    outcomes = await _outcomes(writer, requests)

    assert [i for i, outcome in enumerate(outcomes) if outcome == "refused"] == [2, 7]
    assert outcomes.count("stored") == 7
    assert len(await _stored(database)) == 7
    assert sizes[0] == 9 and len(sizes) < 2 * 9  # halves, not one request at a time
    # The writer is healthy afterwards: the next group is written whole.
    sizes.clear()
    assert await _outcomes(writer, [[_row("s3", "after")], [_row("s3", "after2")]]) == [
        "stored",
        "stored",
    ]
    assert sizes == [2]


async def test_a_failure_no_row_can_cause_fails_the_group_without_splitting(
    writer: OutboxWriter, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def broken(group: list[_Request], *args: Any) -> list[Stored]:
        calls.append(len(group))
        raise psycopg.errors.UndefinedTable("usage_events")

    monkeypatch.setattr(writer, "_store", broken)
    answers = await asyncio.gather(
        *(_submit(writer, [_row("s1", f"t{i}")]) for i in range(4)), return_exceptions=True
    )
    assert all(isinstance(a, psycopg.errors.UndefinedTable) for a in answers)
    assert calls == [4]


@pytest.mark.parametrize(
    ("error", "row_caused"),
    [
        (_pg_error(psycopg.errors.UntranslatableCharacter), True),  # NUL in text/jsonb
        (_pg_error(psycopg.errors.StringDataRightTruncation), True),
        (_pg_error(psycopg.errors.NumericValueOutOfRange), True),
        (_pg_error(psycopg.errors.NotNullViolation), True),
        (_pg_error(psycopg.errors.CheckViolation), True),
        (DBAPIError("INSERT", {}, _pg_error(psycopg.errors.UntranslatableCharacter)), True),
        (DBAPIError("INSERT", {}, sqlite3.IntegrityError("NOT NULL constraint failed")), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (_pg_error(psycopg.errors.UndefinedTable), False),
        (_pg_error(psycopg.errors.DiskFull), False),
        (_pg_error(psycopg.errors.DeadlockDetected), False),
        (DBAPIError("INSERT", {}, sqlite3.OperationalError("disk I/O error")), False),
    ],
)
def test_which_failures_one_request_can_cause(error: Exception, row_caused: bool) -> None:
    assert _row_caused(error) is row_caused
