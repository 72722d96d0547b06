"""``gateway worker`` with one more webhook handler, for ``bench_webhook_relay``: every
webhook runs a handler that takes 5 ms and then succeeds, or fails as when Lago is down
(``LagoUnavailable``: transient, retried on a schedule). ``--port`` runs ``gateway serve``
(API and workers in one process) with the handler instead.

    .venv/bin/python -m tests.bench.webhook_gateway --handlers fail [--port 8080]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn

from gateway import worker
from gateway.app import create_app
from gateway.config import load_settings
from gateway.http.serving import CoalescingHttpToolsProtocol
from gateway.integrations.lago.client import LagoUnavailable
from gateway.logging import configure_logging
from gateway.webhooks.handlers import HandlerTable, Route

HANDLER_SECONDS = 0.005


async def succeed(runtime: Any, inbound: Any, payload: dict[str, Any]) -> None:
    await asyncio.sleep(HANDLER_SECONDS)


async def fail(runtime: Any, inbound: Any, payload: dict[str, Any]) -> None:
    await asyncio.sleep(HANDLER_SECONDS)
    raise LagoUnavailable("connection refused")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, help="serve the API too, on this port")
    parser.add_argument("--handlers", choices=("succeed", "fail", "none"), required=True)
    args = parser.parse_args()
    if args.handlers != "none":
        extra = Route("*", "*", succeed if args.handlers == "succeed" else fail)
        worker.WEBHOOK_HANDLERS = HandlerTable([extra, *worker.WEBHOOK_HANDLERS.routes])
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if args.port is None:
        from gateway.cli import main as gateway

        gateway(["worker"])  # ``gateway worker``, with the handler above in its table
        return
    app = create_app(settings, run_workers=True, server_gc=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # type: ignore[arg-type]
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
