"""The gateway on a real socket, for clients that open their own connections (Lago's SDK).

``lago-python-client`` is synchronous and opens a connection per call (module-level
``httpx.post``), so the gateway is served for real: uvicorn on 127.0.0.1 (a free port), on
the test's own event loop, over the same app and database; each SDK call runs in a worker
thread (``call``) so the loop stays free to answer it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import uvicorn

from tests.conftest import Gateway
from tests.support.postgres import free_port

T = TypeVar("T")


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[str]:
    """The gateway's base URL on a real socket (its lifespan already runs in the fixture)."""
    config = uvicorn.Config(
        gateway.app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        ws="none",
        http="h11",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one synchronous SDK call in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` (already started, or needing no lifespan) behind uvicorn on 127.0.0.1."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
