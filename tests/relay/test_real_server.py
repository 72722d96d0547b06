"""Delivery over real sockets: a uvicorn subscriber on 127.0.0.1, the worker job, a SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text

from gateway.db import Database
from gateway.relay.service import enqueue_message
from lago.emulator import EmulatorState
from tests.conftest import start_gateway
from tests.relay.conftest import eventually, relay_settings
from tests.relay.receiver import Receiver
from tests.support.postgres import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class SlowReceiver(Receiver):
    """Answers after ``delay`` seconds; the first request to ``/slow`` hangs past any timeout."""

    delay: float = 0.0
    hung: bool = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["path"] == "/slow" and not self.hung:
            self.hung = True
            await asyncio.sleep(3)  # the sender has given up by now: nothing to answer
            return
        await super().__call__(scope, receive, send)

    async def before_answer(self, path: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_the_worker_job_delivers_to_a_real_local_server(
    database_url: str, emulator: EmulatorState
) -> None:
    receiver = SlowReceiver()
    settings = relay_settings(database_url, relay_timeout_seconds=0.5)
    async with serving(receiver) as base:
        gw, manager = await start_gateway(settings, emulator, run_workers=True)
        try:
            admin = await gw.headers("admin")
            for path in ("/hook", "/slow"):
                created = await gw.client.post(
                    "/gateway/endpoints", json={"url": base + path}, headers=admin
                )
                assert created.status_code == 201, created.text
                receiver.secrets.append(created.json()["secret"])
            async with gw.runtime.database.engine.begin() as conn:
                await enqueue_message(
                    conn, message_id="m1", type="invoice.created", source="lago", data={"x": 1}
                )
            await eventually(lambda: len(receiver.received) == 2)
            response = await gw.client.get(
                "/gateway/messages/m1", headers=await gw.headers("billing:read")
            )
            attempts = response.json()["message"]["attempts"]
        finally:
            await gw.client.aclose()
            await manager.__aexit__(None, None, None)
    assert receiver.bad_signatures == 0
    assert sorted(r.path for r in receiver.received) == ["/hook", "/slow"]
    slow = [a for a in attempts if a["error"] == "timeout"]
    assert len(slow) == 1
    assert len(attempts) == 3


def _worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_LAGO_API_URL": "http://127.0.0.1:9",
        "GATEWAY_LAGO_API_KEY": "unused",
        "GATEWAY_RELAY_ALLOW_PRIVATE": "true",
        "GATEWAY_RELAY_TIMEOUT_SECONDS": "0.5",
        "GATEWAY_RELAY_LEASE_SECONDS": "1",
        "GATEWAY_RELAY_CONCURRENCY": "8",
        "GATEWAY_LOG_LEVEL": "ERROR",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
async def test_deliveries_resume_after_the_worker_process_is_sigkilled(
    database_url: str,
) -> None:
    receiver = SlowReceiver(secrets=[SECRET])  # a request torn by the kill fails verification
    receiver.delay = 0.02
    database = Database(database_url)
    async with serving(receiver) as base:
        try:
            async with database.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO relay_endpoints (id, url, description, filter_types, enabled, "
                        "secret, created_at, updated_at) VALUES ('ep_1', :url, '', '[\"*\"]', "
                        ":yes, :secret, 0, 0)"
                    ),
                    {"url": base + "/hook", "yes": True, "secret": SECRET},
                )
                for i in range(150):
                    await enqueue_message(
                        conn,
                        message_id=f"m{i}",
                        type="invoice.created",
                        source="lago",
                        data={"i": i},
                    )
            first = _worker(database_url)
            try:
                await eventually(lambda: len(receiver.received) >= 20, seconds=30)
            finally:
                first.send_signal(signal.SIGKILL)
                await asyncio.to_thread(first.wait)
            # Requests the killed worker had already written are still in the socket buffers.
            await asyncio.sleep(0.5)
            before_kill = {r.message_id for r in receiver.received}
            assert len(before_kill) < 150
            second = _worker(database_url)
            try:
                await eventually(lambda: len(receiver.unique_ids) == 150, seconds=60)
            finally:
                second.send_signal(signal.SIGTERM)
                await asyncio.to_thread(second.wait, 30)
        finally:
            await database.dispose()
    # At least once: what the killed worker sent but had not recorded arrives again, same id,
    # same bytes; nothing the second worker sent arrives twice.
    bodies: dict[str, bytes] = {}
    for r in receiver.received:
        assert bodies.setdefault(r.message_id, r.body) == r.body
    twice = {m for m, n in receiver.counts.items() if n > 1}
    assert twice <= before_kill
    assert max(receiver.counts.values()) <= 2
