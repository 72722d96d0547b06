"""Figure: relay deliveries. Durable PostgreSQL, a local subscriber (uvicorn, its own process)
that verifies every signature with ``standardwebhooks``, and the relay sender in this process.

    .venv/bin/python -m tests.bench.bench_relay [--messages 10000] [--rate 500] [--concurrency 256]

1. Baseline: the sender's own POSTs (aiohttp) of the same signed bodies to the same
   subscriber, same concurrency, no database: the ceiling of this machine's HTTP path.
2. Throughput: N messages stored, then the sender starts and drains them: deliveries/s.
3. Latency while healthy: messages enqueued one per transaction at a steady rate with the
   sender running (woken in-process, as in ``gateway serve``): from the start of the enqueue
   to the subscriber's receipt, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from tests.bench import support
from tests.bench.support import Stack, say
from tests.support.postgres import free_port

PRODUCERS = 16
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAYLOAD = {
    "webhook_type": "invoice.created",
    "object_type": "invoice",
    "invoice": {
        "lago_id": "1a901a90-1a90-1a90-1a90-1a901a901a90",
        "number": "LAG-1234-001-002",
        "status": "finalized",
        "payment_status": "pending",
        "currency": "EUR",
        "total_amount_cents": 12345,
        "fees": [
            {"item": {"code": "photo_generation", "units": str(n)}, "amount_cents": n}
            for n in range(8)
        ],
        "customer": {"external_id": "cus_0001", "name": "Bench customer", "email": "b@example.com"},
    },
}

# The subscriber: verify, keep (id, receipt time), answer 204. ``GET /stats`` hands them over.
_received: list[tuple[str, float]] = []
_hook = Webhook(SECRET)


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        content = orjson.dumps(_received)
        _received.clear()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": content})
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    _hook.verify(body, headers, json_parse=False)
    _received.append((headers["webhook-id"], time.time()))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def start_receiver(stack: Stack) -> str:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.bench.bench_relay:receiver_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "off",
    ]
    process = stack.spawn("receiver", argv)
    url = f"http://127.0.0.1:{port}"
    support.wait_http(url + "/stats", process)
    return url


async def collect(url: str) -> list[tuple[str, float]]:
    """Take what the subscriber received so far (it forgets it)."""
    response = await asyncio.to_thread(httpx.get, url + "/stats")
    got: list[tuple[str, float]] = orjson.loads(response.content)
    return got


async def baseline(url: str, count: int, concurrency: int) -> tuple[float, float]:
    """Signed POSTs through the sender's pools (aiohttp), same concurrency, no database."""
    from gateway.relay.outbound import Pools

    body = orjson.dumps(
        {
            "id": "x",
            "type": "invoice.created",
            "source": "lago",
            "created_at": "2024-01-01T00:00:00.000Z",
            "data": PAYLOAD,
        }
    ).decode()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    pools = Pools(concurrency, 15.0, allow_private=True)
    try:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                now = datetime.now(UTC)
                headers = {
                    "webhook-id": f"b{i}",
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": _hook.sign(f"b{i}", now, body),
                }
                status, _, _ = await pools.post(url + "/hook", body.encode(), headers)
                assert status == 204

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await pools.aclose()
    await collect(url)
    return count / elapsed, cpu / count * 1000


async def relay(
    database_url: str, url: str, count: int, rate: float, concurrency: int
) -> dict[str, float]:
    from sqlalchemy import text

    from gateway.config import Settings
    from gateway.db import Database
    from gateway.relay.sender import Sender
    from gateway.relay.service import enqueue_message

    settings = Settings(
        database_url=database_url,
        lago_api_url="http://127.0.0.1:9",
        lago_api_key="unused",
        relay_allow_private=True,
        relay_concurrency=concurrency,
        log_json=False,
    )
    database = Database(database_url, pool_size=20)
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO relay_endpoints (id, url, description, filter_types, enabled, secret, "
                "created_at, updated_at) VALUES ('ep_bench', :url, '', '[\"invoice.*\"]', true, "
                ":secret, 0, 0)"
            ),
            {"url": url + "/hook", "secret": SECRET},
        )

    say(f"enqueueing {count} messages (sender stopped) ...")
    for start in range(0, count, 500):
        async with database.engine.begin() as conn:
            for i in range(start, min(count, start + 500)):
                await enqueue_message(
                    conn, message_id=f"t{i}", type="invoice.created", source="lago", data=PAYLOAD
                )
    stop = asyncio.Event()
    sender_database = Database(database_url, pool_size=3)  # as the worker job does
    sender = Sender(settings, sender_database)
    say("draining ...")
    started, cpu = time.time(), time.process_time()
    task = asyncio.create_task(sender.run(stop))
    got: list[tuple[str, float]] = []
    while len({m for m, _ in got}) < count:
        await asyncio.sleep(0.2)
        got += await collect(url)
        if time.time() - started > 40:
            raise RuntimeError(f"only {len(got)} of {count} delivered in 40 s")
    drain_rate = count / (max(t for _, t in got) - started)
    drain_cpu = (time.process_time() - cpu) / count * 1000
    duplicates = len(got) - len({m for m, _ in got})

    total = int(rate * 5)
    say(f"steady load: {total} messages at {rate:.0f}/s, one per transaction ...")
    enqueued: dict[str, float] = {}
    begin = time.perf_counter()

    async def producer(k: int) -> None:
        # Like the inbound handlers: each message stored in its own transaction, on schedule
        # (or as fast as the database allows when behind). Receipt = the transaction's start.
        for i in range(k, total, PRODUCERS):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.time()
            async with database.engine.begin() as conn:
                await enqueue_message(
                    conn, message_id=f"l{i}", type="invoice.created", source="lago", data=PAYLOAD
                )
            enqueued[f"l{i}"] = t0

    await asyncio.gather(*(producer(k) for k in range(PRODUCERS)))
    enqueue_seconds = time.perf_counter() - begin
    latencies: list[float] = []
    deadline = time.time() + 20
    while len(latencies) < total and time.time() < deadline:
        await asyncio.sleep(0.2)
        latencies += [(t - enqueued[m]) * 1000 for m, t in await collect(url) if m in enqueued]
    stop.set()
    await task
    async with database.engine.connect() as conn:
        waits = sorted(
            (row[0] - row[1]) * 1000
            for row in await conn.execute(
                text(
                    "SELECT a.attempted_at, d.created_at FROM relay_attempts a "
                    "JOIN relay_deliveries d ON d.id = a.delivery_id WHERE a.message_id LIKE 'l%'"
                )
            )
        )
    say(
        f"  (stored -> attempt started: p50 {statistics.median(waits):.1f} ms, "
        f"p99 {waits[int(len(waits) * 0.99) - 1]:.1f} ms)"
    )
    await sender_database.dispose()
    await database.dispose()
    latencies.sort()
    return {
        "drain_rate": drain_rate,
        "drain_cpu_ms": drain_cpu,
        "duplicates": duplicates,
        "latency_count": len(latencies),
        "latency_expected": total,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "max": latencies[-1],
        "enqueue_rate": total / enqueue_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0, help="steady-load messages/s")
    parser.add_argument(
        "--concurrency", type=int, default=256, help="relay_concurrency (the default)"
    )
    args = parser.parse_args()
    support.use_uvloop()
    with Stack() as stack:
        database_url = stack.database("relay_bench")
        url = start_receiver(stack)
        say("baseline: the sender's POSTs alone (aiohttp) ...")
        base, base_cpu = asyncio.run(baseline(url, args.messages, args.concurrency))
        result = asyncio.run(relay(database_url, url, args.messages, args.rate, args.concurrency))
    print(
        f"baseline (POSTs only, no DB, concurrency {args.concurrency}): {base:,.0f} requests/s, "
        f"{base_cpu:.2f} ms CPU each"
    )
    print(
        f"relay drain ({args.messages:,} messages, durable PostgreSQL): "
        f"{result['drain_rate']:,.0f} deliveries/s "
        f"({result['drain_rate'] / base:.0%} of baseline), "
        f"{result['drain_cpu_ms']:.2f} ms CPU each, {result['duplicates']} duplicates"
    )
    print(
        f"receipt-to-delivery at {args.rate:.0f}/s ({result['latency_count']}/"
        f"{result['latency_expected']} delivered): p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms "
        f"(enqueued at {result['enqueue_rate']:.0f}/s)"
    )


if __name__ == "__main__":
    main()
