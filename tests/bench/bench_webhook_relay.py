"""Figure: receipt-to-delivery of relayed webhooks while every gateway handler fails, beside
the same run with every handler succeeding.

Durable PostgreSQL; ``gateway serve --workers 2 --no-worker`` takes the webhooks; one worker
process (``webhook_gateway``: ``gateway worker`` where every webhook also runs a 5 ms handler
that succeeds, or fails as when Lago is down, so each is retried on a schedule) relays and
handles; a subscriber in its own process verifies each signature (``bench_relay``'s
receiver). This process posts HMAC-signed Lago webhooks at a steady rate and takes receipt
as the moment just before each POST; delivery is the subscriber's receipt.

    .venv/bin/python -m tests.bench.bench_webhook_relay [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import statistics
import sys
import time
from dataclasses import dataclass

import orjson

from tests.bench import support
from tests.bench.bench_relay import SECRET, collect, start_receiver
from tests.bench.support import Stack, say

HMAC_KEY = "bench-organization-hmac-key"
CONNECTIONS = 128
PATH = "/gateway/webhooks/lago"


@dataclass
class Run:
    mode: str
    sent: int
    send_rate: float
    delivered: int
    p50: float
    p99: float
    max: float
    handled: int
    waiting: int
    handler_failures: int
    cpu: str


def signed_webhooks(count: int, tag: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Lago ``invoice.created`` webhooks as Lago signs them (HMAC of the body)."""
    out = []
    for n in range(count):
        body = orjson.dumps(
            {
                "webhook_type": "invoice.created",
                "object_type": "invoice",
                "organization_id": "org_bench",
                "invoice": {
                    "lago_id": f"00000000-0000-4000-8000-{n:012d}",
                    "number": f"BENCH-{tag}-{n:06d}",
                    "status": "finalized",
                    "payment_status": "pending",
                    "currency": "USD",
                    "total_amount_cents": 1000 + n % 997,
                },
            }
        )
        key = f"{tag}-{n}"
        mac = hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "X-Lago-Signature": base64.b64encode(mac).decode(),
            "X-Lago-Signature-Algorithm": "hmac",
            "X-Lago-Unique-Key": key,
        }
        out.append((key, body, headers))
    return out


def _request(host: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {PATH} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response on a keep-alive connection; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


async def post_steadily(
    url: str, webhooks: list[tuple[str, bytes, dict[str, str]]], rate: float
) -> tuple[dict[str, float], float]:
    """Post on ``CONNECTIONS`` keep-alive connections with pre-built requests (a Python HTTP
    client would cost more CPU than the gateway on this machine), each at its time."""
    host_port = url.removeprefix("http://")
    host, _, port = host_port.partition(":")
    requests = [(key, _request(host_port, body, headers)) for key, body, headers in webhooks]
    sent: dict[str, float] = {}
    begin = time.perf_counter()

    async def connection(k: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in range(k, len(requests), CONNECTIONS):
                delay = begin + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                key, request = requests[i]
                sent[key] = time.time()
                writer.write(request)
                status = await _answer(reader)
                if status != 200:
                    raise RuntimeError(f"webhook {key} answered {status}")
        finally:
            writer.close()

    await asyncio.gather(*(connection(k) for k in range(CONNECTIONS)))
    return sent, len(webhooks) / (time.perf_counter() - begin)


async def measure(
    receiver: str,
    gateway: str,
    database_url: str,
    mode: str,
    rate: float,
    seconds: float,
    roots: dict[str, int],
) -> Run:
    from gateway.webhooks.inbox import message_id

    # Warm-up (not measured): connections opened, processes past their first requests.
    await post_steadily(gateway, signed_webhooks(int(rate), f"warm-{mode}"), rate)
    await asyncio.sleep(3)
    webhooks = signed_webhooks(int(rate * seconds), mode)
    by_message = {message_id("lago", key): key for key, _, _ in webhooks}
    await collect(receiver)
    say(f"{mode}: posting {len(webhooks)} webhooks at {rate:.0f}/s ...")
    say(f"{mode}: pids " + ", ".join(f"{name} {pid}" for name, pid in roots.items()))
    meter = support.CpuMeter(**roots)
    with meter:
        sent, send_rate = await post_steadily(gateway, webhooks, rate)
    say(f"{mode}: {meter.summary()}")
    latencies: list[float] = []
    seen: set[str] = set()
    deadline = time.time() + 30
    while len(seen) < len(webhooks) and time.time() < deadline:
        await asyncio.sleep(0.2)
        for message, at in await collect(receiver):
            key = by_message.get(message)
            if key is not None and key not in seen:
                seen.add(key)
                latencies.append((at - sent[key]) * 1000)
    latencies.sort()
    handled = support.scalar(
        database_url, "SELECT count(*) FROM inbound_webhooks WHERE status = 'handled'"
    )
    waiting = support.scalar(
        database_url, "SELECT count(*) FROM inbound_webhooks WHERE status = 'received'"
    )
    failed_runs = support.scalar(
        database_url,
        "SELECT coalesce(sum(attempts), 0) FROM inbound_webhooks WHERE status <> 'handled'",
    )
    return Run(
        mode=mode,
        sent=len(webhooks),
        send_rate=send_rate,
        delivered=len(seen),
        p50=statistics.median(latencies),
        p99=latencies[max(0, int(len(latencies) * 0.99) - 1)],
        max=latencies[-1],
        handled=int(handled),
        waiting=int(waiting),
        handler_failures=int(failed_runs),
        cpu=meter.summary(),
    )


def run_mode(stack: Stack, receiver: str, mode: str, rate: float, seconds: float) -> Run:
    database_url = stack.database(f"webhook_relay_{mode}")
    support.execute(
        database_url,
        "INSERT INTO relay_endpoints (id, url, description, filter_types, enabled, secret, "
        "created_at, updated_at) VALUES ('ep_bench', %s, '', '[\"invoice.*\"]', true, %s, 0, 0)",
        receiver + "/hook",
        SECRET,
    )
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_LAGO_API_URL": "http://127.0.0.1:9",
        "GATEWAY_LAGO_API_KEY": "unused",
        "GATEWAY_LAGO_WEBHOOK_HMAC_KEY": HMAC_KEY,
        "GATEWAY_RELAY_ALLOW_PRIVATE": "true",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    api = stack.gateway(env, workers=2, no_worker=True, name=f"api-{mode}")
    argv = [sys.executable, "-m", "tests.bench.webhook_gateway", "--handlers", mode]
    worker = stack.spawn(f"worker-{mode}", argv, env)
    roots = {"API": api.process.pid, "worker": worker.pid, "subscriber": _pid(stack, "receiver")}
    if stack.pg is not None:
        roots["PostgreSQL"] = support.postmaster_pid(stack.pg)
    try:
        return asyncio.run(measure(receiver, api.url, database_url, mode, rate, seconds, roots))
    except Exception:
        say(worker.log_tail())
        raise
    finally:
        worker.stop()
        api.process.stop()


def _pid(stack: Stack, name: str) -> int:
    return next(process.pid for process in stack.processes if process.name == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="webhooks/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--modes", nargs="+", default=["succeed", "fail"], choices=["succeed", "fail", "none"]
    )
    args = parser.parse_args()
    support.use_uvloop()
    with Stack() as stack:
        receiver = start_receiver(stack)
        runs = [run_mode(stack, receiver, mode, args.rate, args.seconds) for mode in args.modes]
    for run in runs:
        label = "every handler succeeding" if run.mode == "succeed" else "every handler failing"
        print(
            f"{label}: {run.delivered}/{run.sent} relayed (posted at {run.send_rate:.0f}/s), "
            f"receipt-to-delivery p50 {run.p50:.1f} ms, p99 {run.p99:.1f} ms, "
            f"max {run.max:.1f} ms; "
            f"handlers: {run.handled} handled, {run.handler_failures} failed runs, "
            f"{run.waiting} waiting to retry; while posting, {run.cpu}"
        )


if __name__ == "__main__":
    main()
