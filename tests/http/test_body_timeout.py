"""The request body read timeout, over real sockets into uvicorn serving the whole gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import uvicorn

from gateway.http.serving import CoalescingHttpToolsProtocol
from lago.emulator import EmulatorState
from tests.conftest import Gateway, make_settings, start_gateway
from tests.support.postgres import free_port
from tests.usage.servers import METRIC, seed_through

CHUNK_SECONDS = 0.3
TOTAL_SECONDS = 0.9
MARGIN = 1.0
# One of each surface: the ingest fast path, a FastAPI route, a webhook, a finance page.
ROUTES = ["/api/v1/events", "/api/v1/customers", "/gateway/webhooks/lago", "/finance/login"]


@contextlib.asynccontextmanager
async def served(database_url: str, emulator: EmulatorState) -> AsyncIterator[tuple[Gateway, int]]:
    settings = make_settings(
        database_url,
        body_read_timeout_seconds=CHUNK_SECONDS,
        body_read_total_seconds=TOTAL_SECONDS,
    )
    gateway, manager = await start_gateway(settings, emulator)
    port = free_port()
    config = uvicorn.Config(
        manager.app,
        host="127.0.0.1",
        port=port,
        http=CoalescingHttpToolsProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield gateway, port
    finally:
        server.should_exit = True
        await task
        await gateway.client.aclose()
        await manager.__aexit__(None, None, None)


async def _exchange(
    port: int, head: bytes, chunks: list[bytes], pause: float
) -> tuple[bytes, float]:
    """Send ``head``, then ``chunks`` ``pause`` apart; read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(pause)

    sending = asyncio.create_task(trickle())
    try:
        try:
            answer = await asyncio.wait_for(reader.read(-1), TOTAL_SECONDS + MARGIN + 2)
        except ConnectionResetError:
            # The server closed with bytes of ours unread: its kernel resets the connection,
            # which can discard the answer before it is read. The connection ended all the same.
            answer = b""
        return answer, time.monotonic() - started
    finally:
        sending.cancel()
        writer.close()


def _head(path: str, key: str, length: int) -> bytes:
    """Request headers; ``Connection: close`` so that every answer ends with the connection."""
    # The finance pages post forms (a JSON body would not be read as one).
    kind = (
        "application/x-www-form-urlencoded" if path.startswith("/finance") else "application/json"
    )
    return (
        f"POST {path} HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {kind}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _assert_timed_out(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"\r\nconnection: close" in head.lower()
    assert json.loads(body) == {
        "status": 408,
        "error": "Request Timeout",
        "code": "request_timeout",
    }


async def test_a_stalled_body_is_answered_408_and_closed_on_every_route(
    database_url: str, emulator: EmulatorState
) -> None:
    async with served(database_url, emulator) as (gateway, port):
        key = await gateway.key("admin")
        results = await asyncio.gather(
            *(_exchange(port, _head(path, key, 100), [b'{"event":'], 0) for path in ROUTES)
        )
    for answer, elapsed in results:
        _assert_timed_out(answer)  # reader.read(-1) returned: the server closed the connection
        assert CHUNK_SECONDS <= elapsed < CHUNK_SECONDS + MARGIN


async def test_a_slow_but_steady_body_still_succeeds_and_an_endless_one_does_not(
    database_url: str, emulator: EmulatorState
) -> None:
    event = {"transaction_id": "slow-1", "external_subscription_id": "sub_1", "code": METRIC}
    body = json.dumps({"event": event}).encode()
    pieces = [body[i : i + 25] for i in range(0, len(body), 25)]
    async with served(database_url, emulator) as (gateway, port):
        await seed_through(gateway.runtime.lago, ["sub_1"])
        key = await gateway.key("events:write")
        # Every gap under the chunk timeout, the whole body under the total.
        pause = min(CHUNK_SECONDS / 3, TOTAL_SECONDS / (len(pieces) + 2))
        assert len(pieces) * pause > CHUNK_SECONDS  # slower in all than one chunk's bound
        answer, _ = await _exchange(port, _head("/api/v1/events", key, len(body)), pieces, pause)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        # Each gap is fine, but the body never ends: the total bound answers.
        drip = [b" "] * int(TOTAL_SECONDS / (CHUNK_SECONDS / 3) + 3)
        answer, elapsed = await _exchange(
            port, _head("/api/v1/events", key, 10_000), drip, CHUNK_SECONDS / 3
        )
    if answer:  # empty: reset while the drip was still writing (see ``_exchange``)
        _assert_timed_out(answer)
    assert TOTAL_SECONDS <= elapsed < TOTAL_SECONDS + MARGIN
