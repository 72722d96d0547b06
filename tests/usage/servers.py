"""Real HTTP servers for the usage tests: an ASGI app in a thread, or a process of its own.

Timeouts, connection drops and SIGKILL only mean something over real sockets, so these
tests do not use ``httpx.ASGITransport`` between the gateway and Lago.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
LAGO_KEY = "test-lago-key"
METRIC = "photo_generation"


class ThreadedServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the threaded server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[ThreadedServer]:
    server = ThreadedServer(app).start()
    try:
        yield server
    finally:
        server.stop()


class Spawned:
    """A child process in its own process group; output kept in a file for failures."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def spawn_emulator(tmp: Path, name: str = "emulator") -> tuple[Spawned, str]:
    """``python -m lago.emulator`` on a free port; returns the process and its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "lago.emulator", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--api-key", LAGO_KEY, "--log-level", "warning"]
    process = Spawned(argv, {}, tmp / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        if not process.alive() or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"emulator did not start:\n{process.output()}")
        time.sleep(0.05)


def worker_env(database_url: str, lago_url: str, **settings: Any) -> dict[str, str]:
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_LAGO_API_URL": lago_url,
        "GATEWAY_LAGO_API_KEY": LAGO_KEY,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_LOG_JSON": "false",
    }
    env.update({f"GATEWAY_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def spawn_worker(tmp: Path, env: dict[str, str], name: str = "worker") -> Spawned:
    """``gateway worker`` (the forwarder alone) as its own process."""
    return Spawned([sys.executable, "-m", "gateway", "worker"], env, tmp / f"{name}.log")


async def seed_lago(client: httpx.AsyncClient, subscriptions: list[str]) -> None:
    """A count metric, a plan and one active subscription per id, through Lago's API."""
    metric = {"name": "Photos", "code": METRIC, "aggregation_type": "count_agg"}
    plan = {
        "name": "Basic",
        "code": "basic",
        "interval": "monthly",
        "amount_cents": 999,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": [],
    }
    (await client.post("/billable_metrics", json={"billable_metric": metric})).raise_for_status()
    (await client.post("/plans", json={"plan": plan})).raise_for_status()
    for sub in subscriptions:
        body = {"external_customer_id": f"cust_{sub}", "plan_code": "basic", "external_id": sub}
        (await client.post("/subscriptions", json={"subscription": body})).raise_for_status()


def lago_client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {LAGO_KEY}"}, timeout=10
    )


async def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll an async predicate until it holds, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def seed_through(lago: Any, subscriptions: list[str], customer: str | None = None) -> None:
    """Seed Lago through the gateway's own Lago client (``runtime.lago``), emulator behind."""
    metric = {"name": "Photos", "code": METRIC, "aggregation_type": "count_agg"}
    await lago.call("POST", "/billable_metrics", json={"billable_metric": metric})
    plan = {
        "name": "Basic",
        "code": "basic",
        "interval": "monthly",
        "amount_cents": 999,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": [],
    }
    await lago.call("POST", "/plans", json={"plan": plan})
    for sub in subscriptions:
        body = {
            "external_customer_id": customer or f"cust_{sub}",
            "plan_code": "basic",
            "external_id": sub,
        }
        await lago.call("POST", "/subscriptions", json={"subscription": body})
