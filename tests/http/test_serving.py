"""The coalescing transport under uvicorn's httptools protocol: one write per small answer,
streamed and large bodies as before, and nothing lost on close."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.http.serving import FLUSH_BYTES, CoalescingHttpToolsProtocol, CoalescingTransport
from tests.support.postgres import free_port

BIG = bytes(range(256)) * 4096  # 1 MiB


class RecordingTransport(asyncio.Transport):
    """What a protocol wrote, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))  # after close too, so that a test can see it

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_loop_turn_leave_as_one_write_in_order() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.writelines([b"{", bytearray(b'"a"'), memoryview(b":1}")])
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 19 + 7 + 7
    await next_turn()
    assert inner.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
    transport.write(b"next")
    await next_turn()
    assert inner.writes[1:] == [b"next"]


async def test_a_large_write_goes_out_at_once_after_what_was_pending() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"head")
    transport.write(b"x" * FLUSH_BYTES)
    assert inner.writes == [b"head" + b"x" * FLUSH_BYTES]  # before the turn ends
    transport.write(b"tail")
    await next_turn()
    assert inner.writes[1:] == [b"tail"]


async def test_close_writes_what_is_pending_first_and_abort_drops_it() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"]
    assert inner.closed
    await next_turn()
    assert inner.writes == [b"last words"]

    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await next_turn()
    assert inner.writes == []
    assert inner.aborted


async def test_pending_writes_to_a_connection_already_gone_are_dropped() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"too late")
    inner.closed = True  # the peer went away before the turn ended
    await next_turn()
    assert inner.writes == []
    assert transport.is_closing()


async def _small_answer(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.parametrize(
    ("protocol_class", "writes"), [(HttpToolsProtocol, 2), (CoalescingHttpToolsProtocol, 1)]
)
async def test_an_answer_leaves_in_one_write_where_uvicorn_alone_makes_two(
    protocol_class: type[HttpToolsProtocol], writes: int
) -> None:
    config = uvicorn.Config(_small_answer, log_config=None, access_log=False)
    protocol = protocol_class(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}")
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(transport.writes) == writes
    answer = b"".join(transport.writes)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n{}")
    protocol.connection_lost(None)


# A real server on uvloop, as the gateway serves ---------------------------------------------

release_second_chunk = threading.Event()


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await receive()
    path = scope["path"]
    start = {"type": "http.response.start", "status": 200, "headers": []}
    if path == "/stream":
        await send(start)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, release_second_chunk.wait, 10)
        await send({"type": "http.response.body", "body": b"second"})
    elif path == "/big":
        start["headers"] = [(b"content-length", str(len(BIG)).encode())]
        await send(start)
        await send({"type": "http.response.body", "body": BIG})
    else:
        start["headers"] = [(b"content-length", b"5")]
        await send(start)
        await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_answers_arrive_whole_over_a_kept_alive_connection(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=5) as client:
        for _ in range(3):
            response = client.post("/hello", content=b"{}")
            assert response.status_code == 200
            assert response.content == b"hello"
        big = client.get("/big")
        assert big.content == BIG


def test_a_streamed_chunk_leaves_before_the_body_ends(server_url: str) -> None:
    release_second_chunk.clear()
    with (
        httpx.Client(base_url=server_url, timeout=5) as client,
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.iter_raw()
        started = time.monotonic()
        assert next(chunks) == b"first"  # the server holds the second chunk until told
        assert time.monotonic() - started < 3
        release_second_chunk.set()
        assert b"".join(chunks) == b"second"


def test_connection_close_sends_the_whole_answer_then_closes(server_url: str) -> None:
    host, port = server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\nhello")
