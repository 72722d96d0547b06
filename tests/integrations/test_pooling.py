"""SpreadTransport: many connections in small pools, each slot held until its response closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gateway.integrations.pooling import SpreadTransport

REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class HeldServer:
    """Answers each request only once ``release`` is set; counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.waiting = 0
        self.release = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.waiting += 1
                await self.release.wait()
                writer.write(REPLY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[HeldServer, str]]:
    held = HeldServer()
    listener = await asyncio.start_server(held.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield held, f"http://127.0.0.1:{port}/"


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_requests_in_flight_use_as_many_connections_as_configured(
    server: tuple[HeldServer, str],
) -> None:
    held, url = server
    transport = SpreadTransport(6, per_pool=2)
    async with httpx.AsyncClient(transport=transport) as client:
        calls = [asyncio.create_task(client.get(url)) for _ in range(6)]
        # All six reach the server at once: no request queued behind a busy pool.
        await until(lambda: held.waiting == 6)
        assert held.connections == 6
        held.release.set()
        assert [r.status_code for r in await asyncio.gather(*calls)] == [200] * 6
        # Every slot came back, and the next requests reuse the kept-alive connections.
        assert len(transport._slots) == 6
        await asyncio.gather(*(client.get(url) for _ in range(6)))
        assert held.connections == 6


async def test_a_slot_is_freed_when_its_response_is_closed_unread(
    server: tuple[HeldServer, str],
) -> None:
    held, url = server
    held.release.set()
    transport = SpreadTransport(2, per_pool=2)
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert len(transport._slots) == 1
        assert len(transport._slots) == 2


async def test_a_failed_request_gives_its_slot_back() -> None:
    transport = SpreadTransport(2)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard port: refused
    assert len(transport._slots) == 2


async def test_more_requests_than_slots_wait_and_all_complete(
    server: tuple[HeldServer, str],
) -> None:
    held, url = server
    held.release.set()
    transport = SpreadTransport(2, per_pool=1)
    async with httpx.AsyncClient(transport=transport) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(10)))
    assert [r.status_code for r in answers] == [200] * 10
    assert len(transport._slots) == 2
