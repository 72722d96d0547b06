"""The key verifier's cache: one lookup per key however many requests wait, refreshed ahead
of its expiry while in use, and a revocation still honoured within the cache time."""

from __future__ import annotations

import asyncio

import pytest

from gateway.auth.service import KeyVerifier, Principal, create_key, revoke_key
from gateway.db import Database


async def _key(database: Database, name: str) -> str:
    async with database.session() as session:
        key = await create_key(session, name, ["events:write"])
        await session.commit()
    return key


class Counting(KeyVerifier):
    """Counts the database lookups; ``fail`` makes them raise."""

    lookups = 0
    fail = False

    async def _lookup(self, key: str, digest: str) -> Principal | None:
        self.lookups += 1
        await asyncio.sleep(0.02)  # a lookup takes a while: requests pile up behind it
        if self.fail:
            raise ConnectionError("database gone")
        return await super()._lookup(key, digest)


async def test_concurrent_requests_for_an_uncached_key_share_one_lookup(
    database: Database,
) -> None:
    key = await _key(database, "shared")
    verifier = Counting(database, cache_seconds=5)
    answers = await asyncio.gather(*(verifier.verify(key) for _ in range(50)))
    assert {answer.name if answer else None for answer in answers} == {"shared"}
    assert verifier.lookups == 1
    assert await verifier.verify("gw_unknown_key") is None
    assert verifier.lookups == 2


async def test_a_key_in_use_is_refreshed_before_it_expires(database: Database) -> None:
    key = await _key(database, "busy")
    verifier = Counting(database, cache_seconds=0.5)
    assert await verifier.verify(key) is not None
    await asyncio.sleep(0.43)  # inside the last fifth of the answer's time
    assert await verifier.verify(key) is not None  # answered from the cache at once
    await asyncio.sleep(0)
    assert verifier.lookups == 2  # and looked up again in the background
    await asyncio.sleep(0.15)  # past the first answer's expiry
    answers = await asyncio.gather(*(verifier.verify(key) for _ in range(20)))
    assert all(answer is not None for answer in answers)
    assert verifier.lookups == 2  # the refreshed answer served them: no stall, no stampede


async def test_a_revoked_key_is_refused_within_the_cache_time_even_in_steady_use(
    database: Database,
) -> None:
    key = await _key(database, "revoked")
    verifier = KeyVerifier(database, cache_seconds=0.3)
    loop = asyncio.get_running_loop()
    assert await verifier.verify(key) is not None
    async with database.session() as session:
        await revoke_key(session, "revoked")
        await session.commit()
    revoked_at = loop.time()
    while await verifier.verify(key) is not None:
        assert loop.time() - revoked_at < 0.3 + 0.2, "still accepted past the cache time"
        await asyncio.sleep(0.01)


async def test_a_failed_refresh_keeps_the_answer_until_it_expires_then_fails_loudly(
    database: Database,
) -> None:
    key = await _key(database, "flaky")
    verifier = Counting(database, cache_seconds=0.5)
    assert await verifier.verify(key) is not None
    verifier.fail = True
    await asyncio.sleep(0.43)
    assert await verifier.verify(key) is not None  # the refresh fails in the background
    await asyncio.sleep(0.05)
    assert verifier.lookups == 2
    await asyncio.sleep(0.1)
    with pytest.raises(ConnectionError):
        await verifier.verify(key)


async def test_without_a_cache_every_request_asks(database: Database) -> None:
    key = await _key(database, "uncached")
    verifier = Counting(database, cache_seconds=0)
    await asyncio.gather(*(verifier.verify(key) for _ in range(3)))
    assert verifier.lookups == 3
