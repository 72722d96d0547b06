"""Inbound webhooks: Lago HMAC-signed webhooks verified, stored and acknowledged per second.

Durable PostgreSQL, the Lago emulator and the gateway (``serve --no-worker``) as real
processes, load from wrk replaying pre-signed webhooks (each with its own body and
``X-Lago-Unique-Key``: Lago signs only the body, and the gateway deduplicates on both).
Beside it, in the same run and with the same requests: a bare FastAPI endpoint on the
same uvicorn settings that reads the body and answers the same 200 (no verification, no
storage). Each stored webhook's relay message is written with it, so the acknowledged rate
includes relaying. Then ``gateway worker`` runs the gateway's handlers of everything stored
(no relay work left), timed.

    .venv/bin/python -m tests.bench.bench_webhooks_inbound [--workers 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil

from tests.bench import support
from tests.bench.support import Stack, say

HMAC_KEY = "bench-organization-hmac-key"
PATH = "/gateway/webhooks/lago"

REPLAY_LUA = """
counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  local nthreads = tonumber(args[2])
  items = {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid - 1 then
      local k, s, b = line:match("^([^\\t]*)\\t([^\\t]*)\\t(.*)$")
      items[#items + 1] = wrk.format("POST", "{PATH}", {
        ["Content-Type"] = "application/json",
        ["X-Lago-Signature-Algorithm"] = "hmac",
        ["X-Lago-Signature"] = s,
        ["X-Lago-Unique-Key"] = k,
      }, b)
    end
    i = i + 1
  end
  next_item = 0
end
function request()
  next_item = next_item % #items + 1
  return items[next_item]
end
""".replace("{PATH}", PATH)


def lago_webhook(n: int, run: str) -> bytes:
    """An ``invoice.created`` webhook about the size of Lago's (invoice, customer, two fees)."""
    invoice_id = str(uuid.UUID(int=n + (hash(run) & 0xFFFF) * 10**12))
    fee = {
        "lago_id": str(uuid.uuid4()),
        "amount_cents": 1250 + n % 100,
        "amount_currency": "USD",
        "taxes_amount_cents": 0,
        "units": "125.0",
        "events_count": 125,
        "item": {"type": "charge", "code": "photo_generation", "name": "Photo generations"},
    }
    envelope = {
        "webhook_type": "invoice.created",
        "object_type": "invoice",
        "organization_id": "0d6c8b1e-6a55-4f3e-9d9a-6c6f1f0a0b1c",
        "invoice": {
            "lago_id": invoice_id,
            "sequential_id": n,
            "number": f"ACME-{run}-{n:06d}",
            "issuing_date": "2025-09-01",
            "invoice_type": "subscription",
            "status": "finalized",
            "payment_status": "pending",
            "currency": "USD",
            "fees_amount_cents": 2500,
            "total_amount_cents": 2500 + n % 100,
            "customer": {
                "lago_id": str(uuid.uuid4()),
                "external_id": f"cust_{n % 500}",
                "name": "Acme Studio",
                "email": "billing@acme.test",
                "currency": "USD",
            },
            "fees": [fee, {**fee, "lago_id": str(uuid.uuid4())}],
        },
    }
    return orjson.dumps(envelope)


def write_requests(path: Path, count: int, run: str) -> int:
    """``unique-key<TAB>signature<TAB>body`` per line, signed as Lago signs (HMAC, base64)."""
    size = 0
    with path.open("wb") as out:
        for n in range(count):
            body = lago_webhook(n, run)
            sig = base64.b64encode(hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).digest())
            out.write(f"{run}-{n}\t".encode() + sig + b"\t" + body + b"\n")
            size += len(body)
    return size // count


BASELINE_APP = """
from fastapi import FastAPI, Request, Response

app = FastAPI()

@app.post("{PATH}")
async def receive(request: Request) -> Response:
    await request.body()
    return Response(b'{"received":true,"duplicate":false}', media_type="application/json")
""".replace("{PATH}", PATH)


def serve_baseline(workers: int, stack: Stack) -> tuple[str, int]:
    """The bare endpoint under uvicorn with the gateway's settings; its URL and pid."""
    port, workdir = support.postgres.free_port(), stack.workdir
    module = workdir / "bench_bare_app.py"
    module.write_text(BASELINE_APP)
    argv = [sys.executable, "-m", "uvicorn", "bench_bare_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--loop", "uvloop"]
    argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    argv += ["--app-dir", str(workdir)]
    process = stack.spawn(f"baseline-w{workers}", argv)
    url = f"http://127.0.0.1:{port}"
    support.wait_http(f"{url}/docs", process)
    return url, process.pid


@dataclass
class Measured:
    """One measured wrk run and the CPU seconds each party spent during it."""

    wrk: support.WrkResult
    cpu: dict[str, float]

    def cpu_us_per_request(self, requests: int) -> dict[str, float]:
        return {name: seconds * 1e6 / max(1, requests) for name, seconds in self.cpu.items()}


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _postmaster_pid(stack: Stack) -> int:
    assert stack.pg is not None
    return int((stack.pg.datadir / "postmaster.pid").read_text().splitlines()[0])


def _cpu(server_pid: int, stack: Stack) -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    return {
        "server": _tree_cpu(server_pid),
        "postgres": _tree_cpu(_postmaster_pid(stack)),
        "wrk": children.ru_utime + children.ru_stime,
    }


def load(
    stack: Stack,
    url: str,
    server_pid: int,
    requests: tuple[Path, Path],
    options: argparse.Namespace,
) -> Measured:
    """A short warm-up (connections, caches) with one set of webhooks, then the measured run."""

    def wrk(path: Path, seconds: float) -> support.WrkResult:
        return support.run_wrk(
            url + PATH,
            REPLAY_LUA,
            connections=options.connections,
            threads=options.threads,
            seconds=seconds,
            args=[str(path), str(options.threads)],
            workdir=stack.workdir,
        )

    wrk(requests[0], 2)
    before = _cpu(server_pid, stack)
    result = wrk(requests[1], options.seconds)
    after = _cpu(server_pid, stack)
    return Measured(result, {name: after[name] - before[name] for name in before})


def drain(database_url: str, env: dict[str, str], stack: Stack, limit: float) -> tuple[int, float]:
    """Start ``gateway worker`` and time how long its handlers take over everything stored."""
    waiting = "SELECT count(*) FROM inbound_webhooks WHERE status = 'received'"
    total = int(support.scalar(database_url, waiting))
    started = time.monotonic()
    worker = stack.worker(env, name="webhooks-worker")
    left = total
    while left and time.monotonic() - started < limit and worker.alive():
        time.sleep(0.2)
        left = int(support.scalar(database_url, waiting))
    elapsed = time.monotonic() - started
    worker.stop()
    left = int(support.scalar(database_url, waiting))
    return total - left, elapsed


def _cost_line(label: str, measured: Measured, requests: int) -> tuple[str, float]:
    per = measured.cpu_us_per_request(requests)
    total = sum(per.values())
    capacity = (os.cpu_count() or 1) * 1e6 / total if total else float("nan")
    parts = ", ".join(f"{name} {value:,.0f}" for name, value in per.items())
    return (
        f"{label}: CPU per request {total:,.0f} us ({parts}) -> "
        f"{capacity:,.0f}/s if {os.cpu_count()} cores were ours alone",
        capacity,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="API processes (gateway and bare)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--drain-seconds", type=float, default=10.0)
    parser.add_argument("--profile", help="a folder for a py-spy profile of the gateway")
    options = parser.parse_args()
    support.require_wrk()
    with Stack() as stack:
        run = uuid.uuid4().hex[:6]
        warm, measured = stack.workdir / "warm.tsv", stack.workdir / "requests.tsv"
        write_requests(warm, 10_000, f"{run}w")
        average = write_requests(measured, int(options.seconds * 5000), run)
        requests = (warm, measured)
        url = stack.database("bench_webhooks")
        emulator = stack.emulator()
        env = support.gateway_env(url, emulator, lago_webhook_hmac_key=HMAC_KEY)

        say(f"baseline: bare FastAPI endpoint, {options.workers} process(es) ...")
        bare_url, bare_pid = serve_baseline(options.workers, stack)
        base = load(stack, bare_url, bare_pid, requests, options)

        say(f"gateway: serve --no-worker, {options.workers} API process(es) ...")
        gateway = stack.gateway(env, workers=options.workers, no_worker=True)
        spy = None
        if options.profile:
            out = Path(options.profile) / "webhooks-inbound.txt"
            spy = support.profile(gateway.process.pid, options.seconds + 2, out)  # with warm-up
        result = load(stack, gateway.url, gateway.process.pid, requests, options)
        if spy is not None:
            spy.wait(30)
        stored = int(
            support.scalar(
                url,
                "SELECT count(*) FROM inbound_webhooks WHERE provider_event_id LIKE %s",
                f"{run}-%",
            )
        )
        gateway.process.stop()
        handled, drain_time = drain(url, env, stack, options.drain_seconds)
        messages = int(support.scalar(url, "SELECT count(*) FROM relay_messages"))

    report(options, base, result, stored, average, (handled, drain_time, messages))


def report(
    options: argparse.Namespace,
    base: Measured,
    result: Measured,
    stored: int,
    average: int,
    drained: tuple[int, float, int],
) -> None:
    ok = result.wrk.requests - result.wrk.non_2xx
    rate = ok / result.wrk.duration
    if result.wrk.non_2xx or result.wrk.socket_errors:
        say(f"WARNING: {result.wrk.non_2xx} non-2xx, {result.wrk.socket_errors} socket errors")
    print(
        f"baseline, bare FastAPI 200 (same requests, no verification, no storage): "
        f"{base.wrk.rate:,.0f} req/s (p50 {base.wrk.p50_ms:.1f} ms, p99 {base.wrk.p99_ms:.1f} ms)"
    )
    print(
        f"gateway: {rate:,.0f} webhooks/s verified+stored+acknowledged ({stored:,} rows for "
        f"{ok:,} 200s; p50 {result.wrk.p50_ms:.1f} ms, p99 {result.wrk.p99_ms:.1f} ms, "
        f"non-2xx {result.wrk.non_2xx}; bodies ~{average} B)"
    )
    base_line, _ = _cost_line("baseline", base, base.wrk.requests)
    gateway_line, capacity = _cost_line("gateway", result, ok)
    print(base_line)
    print(gateway_line)
    handled, drain_time, messages = drained
    print(
        f"worker: {handled:,} webhooks through the gateway's handlers in {drain_time:.1f}s "
        f"({handled / drain_time:,.0f}/s; {messages:,} relay messages, written on receipt)"
    )
    print(
        f"RESULT inbound webhooks: {rate:,.0f}/s measured ({options.workers} API process(es), "
        f"{options.connections} connections, durable PostgreSQL), {capacity:,.0f}/s by CPU cost "
        f"| baseline {base.wrk.rate:,.0f} req/s | ratio {rate / base.wrk.rate:.2f} | "
        f"target 1,000/s: {'met' if rate >= 1000 else 'MISSED'} (measured)"
    )
    print(support.cpu_note())


if __name__ == "__main__":
    main()
