"""Soak proof: nothing lost, nothing twice, memory flat, under faults and crashes.

Part 1 (soak): ``--events`` unique usage events (default 1,000,000) from concurrent producers,
10% of the batches sent a second time, into one ``gateway serve`` process (API and workers)
on a durable PostgreSQL. The Lago emulator runs as its own process and fails 20% of requests
(500) throughout, with a full outage (``--outage`` s, default 60) once half the events are
sent. The gateway is SIGKILLed twice (at 25% and 75% of the events sent) and restarted on the
same port; producers resend whatever was not acknowledged, as a Lago SDK user would. At the
end the emulator must hold exactly the unique events, none twice, the outbox must show every
event forwarded and none dead, and the gateway's RSS must stay flat (sampled every 2 s).

Part 2 (throughput with a full outbox): ingest + forward ``--tp-events`` events on an empty
outbox, then again after ``--rows`` forwarded rows (default 10,000,000) were inserted with
``INSERT … SELECT generate_series`` (what the retention job would prune after 30 days); the
drop must stay within 20%.

    .venv/bin/python -m tests.bench.bench_soak [--events N] [--outage S] [--rows N]
        [--tp-events N] [--skip-soak] [--skip-throughput]

Figures go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from tests.bench import support
from tests.bench.support import METRIC_CODE, Emulator, Process, Stack, say

SUBSCRIPTIONS = 50
BATCH = 100


# ---------------------------------------------------------------------------- the gateway


@dataclass
class GatewayProcess:
    """One ``gateway serve`` (API and workers) on a fixed port, killed and restarted at will."""

    stack: Stack
    env: dict[str, str]
    port: int
    process: Process | None = None
    incarnation: int = 0
    rss: list[tuple[int, float, float]] = field(default_factory=list)  # (incarnation, t, MiB)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.incarnation += 1
        argv = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        self.process = self.stack.spawn(f"gateway-{self.incarnation}", argv, self.env)
        support.wait_http(f"{self.url}/healthz", self.process, timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        say(f"SIGKILL gateway (pid {self.process.pid}, incarnation {self.incarnation})")
        self.process.stop(signal.SIGKILL)

    def sample_rss(self, started: float) -> None:
        if self.process is None or not self.process.alive():
            return
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.process.pid)
            total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            self.rss.append((self.incarnation, time.monotonic() - started, total / 2**20))


# ---------------------------------------------------------------------------- producers


@dataclass
class Progress:
    total: int
    sent: int = 0
    requests: int = 0
    resends: int = 0
    retries: int = 0
    milestones: dict[float, asyncio.Event] = field(default_factory=dict)

    def reached(self, share: float) -> asyncio.Event:
        return self.milestones.setdefault(share, asyncio.Event())

    def add(self, count: int) -> None:
        self.sent += count
        for share, event in self.milestones.items():
            if self.sent >= share * self.total:
                event.set()


def _batch(prefix: str, start: int, count: int, now: int) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": f"{prefix}-{i}",
            "external_subscription_id": f"sub_{i % SUBSCRIPTIONS}",
            "code": METRIC_CODE,
            "timestamp": now - (i % 86_400),
        }
        for i in range(start, start + count)
    ]


async def _send(client: httpx.AsyncClient, body: bytes, progress: Progress) -> None:
    """Post until acknowledged: the gateway may be dead or restarting (a user would retry)."""
    while True:
        progress.requests += 1
        try:
            response = await client.post("/api/v1/events/batch", content=body)
            if response.status_code == 200:
                return
            if response.status_code < 500 and response.status_code != 429:
                raise RuntimeError(f"refused: {response.status_code} {response.text[:300]}")
        except httpx.TransportError:
            pass
        progress.retries += 1
        await asyncio.sleep(0.2)


async def produce(
    url: str,
    key: str,
    prefix: str,
    total: int,
    producers: int,
    progress: Progress,
    resend_every: int = 10,
) -> None:
    """``total`` unique events in batches of 100; every ``resend_every``-th batch sent twice."""
    import orjson

    now = int(time.time())
    starts = iter(range(0, total, BATCH))
    lock = threading.Lock()

    async def one(worker: int) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=2)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as c:
            while True:
                with lock:
                    start = next(starts, None)
                if start is None:
                    return
                count = min(BATCH, total - start)
                body = orjson.dumps({"events": _batch(prefix, start, count, now)})
                await _send(c, body, progress)
                if (start // BATCH) % resend_every == worker % resend_every:
                    progress.resends += 1
                    await _send(c, body, progress)
                progress.add(count)

    await asyncio.gather(*(one(n) for n in range(producers)))


# ---------------------------------------------------------------------------- part 1: soak


def _pending(url: str) -> int:
    return int(support.scalar(url, "SELECT count(*) FROM usage_events WHERE status = 'pending'"))


async def soak(stack: Stack, options: argparse.Namespace) -> dict[str, Any]:
    url = stack.database("soak")
    emulator = stack.emulator("emulator-soak")
    emulator.seed(SUBSCRIPTIONS)
    env = support.gateway_env(url, emulator, forward_backoff_max_seconds=5)
    key = support.create_key(env, "soak", "admin")
    gateway = GatewayProcess(stack, env, support.postgres.free_port())
    gateway.start()
    emulator.faults(error_rate=options.error_rate, seed=11)
    progress = Progress(options.events)
    started = time.monotonic()
    stop_sampling = asyncio.Event()

    async def sampler() -> None:
        while not stop_sampling.is_set():
            gateway.sample_rss(started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sampling.wait(), 2.0)

    async def chaos() -> None:
        for share, action in ((0.25, "kill"), (0.5, "outage"), (0.75, "kill")):
            await progress.reached(share).wait()
            if action == "kill":
                await asyncio.to_thread(gateway.kill)
                await asyncio.to_thread(gateway.start)
                say(f"gateway restarted (incarnation {gateway.incarnation})")
            else:
                say(f"Lago full outage for {options.outage:.0f} s")
                emulator.faults(outage_seconds=options.outage)

    async def report() -> None:
        while not stop_sampling.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sampling.wait(), 10.0)
            stored = emulator.stats()["events_stored"]
            say(
                f"{time.monotonic() - started:6.0f}s sent {progress.sent:,} / {options.events:,}"
                f", Lago holds {stored:,}"
            )

    tasks = [asyncio.create_task(sampler()), asyncio.create_task(report())]
    chaos_task = asyncio.create_task(chaos())
    await produce(gateway.url, key, "soak", options.events, options.producers, progress)
    sent_at = time.monotonic()
    await chaos_task
    say("all events acknowledged; waiting for the outbox to drain ...")
    while _pending(url) or emulator.stats()["events_stored"] < options.events:
        if time.monotonic() - sent_at > options.drain_timeout:
            raise SystemExit("the outbox did not drain in time")
        await asyncio.sleep(1.0)
    drained_at = time.monotonic()
    stop_sampling.set()
    await asyncio.gather(*tasks)
    stats = emulator.stats()
    holds = _emulator_ids(emulator, options.events)
    return {
        "events": options.events,
        "producers": options.producers,
        "requests": progress.requests,
        "resent_batches": progress.resends,
        "retried_requests": progress.retries,
        "ingest_seconds": sent_at - started,
        "drain_seconds": drained_at - sent_at,
        "stats": stats,
        "emulator_ids": holds,
        "outbox": {
            status: support.scalar(
                url, "SELECT count(*) FROM usage_events WHERE status = %s", status
            )
            for status in ("pending", "forwarded", "dead")
        },
        "rss": gateway.rss,
    }


def _emulator_ids(emulator: Emulator, expected: int) -> bool:
    """Whether the emulator's transaction ids are exactly the unique ones."""
    ids = httpx.get(
        f"{emulator.url}/_emulator/events",
        params={"limit": expected + 1000, "only": "transaction_id"},
        timeout=300,
    ).json()["transaction_ids"]
    return len(ids) == len(set(ids)) == expected and set(ids) == {
        f"soak-{i}" for i in range(expected)
    }


def rss_verdict(samples: list[tuple[int, float, float]]) -> tuple[str, bool]:
    """Per incarnation: RSS after warm-up and at its end; flat = last third within 10% of the
    middle third (a leak grows steadily; a process that just started is still loading)."""
    lines, flat = [], True
    for incarnation in sorted({s[0] for s in samples}):
        values = [mib for inc, _, mib in samples if inc == incarnation]
        if len(values) < 6:
            lines.append(f"  incarnation {incarnation}: {len(values)} samples (too short to judge)")
            continue
        third = len(values) // 3
        middle = statistics.median(values[third : 2 * third])
        last = statistics.median(values[2 * third :])
        growth = (last - middle) / middle
        flat = flat and growth <= 0.10
        lines.append(
            f"  incarnation {incarnation}: {len(values)} samples, min {min(values):.0f} MiB, "
            f"max {max(values):.0f} MiB, median middle third {middle:.0f} MiB -> last third "
            f"{last:.0f} MiB ({growth:+.1%})"
        )
    return "\n".join(lines), flat


def print_soak(result: dict[str, Any], options: argparse.Namespace) -> bool:
    stats, outbox = result["stats"], result["outbox"]
    rss_lines, flat = rss_verdict(result["rss"])
    exact = stats["events_stored"] == result["events"] and outbox["forwarded"] == result["events"]
    clean = outbox["pending"] == 0 and outbox["dead"] == 0
    ids = result["emulator_ids"]
    print(
        f"SOAK {result['events']:,} unique events, {result['producers']} producers, "
        f"{result['resent_batches']:,} batches sent twice, Lago failing "
        f"{options.error_rate:.0%} + {options.outage:.0f} s outage, gateway SIGKILLed twice"
    )
    print(
        f"  ingest {result['ingest_seconds']:.0f} s "
        f"({result['events'] / result['ingest_seconds']:,.0f}"
        f" events/s acknowledged), drain after the last ack {result['drain_seconds']:.0f} s, "
        f"{result['requests']:,} batch requests ({result['retried_requests']:,} retried while "
        f"the gateway was down)"
    )
    print(
        f"  Lago (emulator): {stats['events_stored']:,} stored, "
        f"{stats['duplicate_rejections']:,} resends refused as value_already_exist, "
        f"answers {stats['requests_by_status']}, faults {stats['faults_injected']}"
    )
    print(f"  outbox: {outbox}")
    print("  transaction ids in Lago == the unique ids: " + str(ids))
    print("  gateway RSS (API + workers, sampled every 2 s):\n" + rss_lines)
    ok = exact and clean and ids and flat
    print(
        f"RESULT soak: exactly the unique events, none twice: {exact and ids}; "
        f"none pending or dead: {clean}; RSS flat: {flat} -> {'PASS' if ok else 'FAIL'}"
    )
    return ok


# ---------------------------------------------------------------------------- part 2: 10M rows

FILL_FORWARDED = """
INSERT INTO usage_events (external_subscription_id, transaction_id, code, payload, fingerprint,
    needs_check, accepted_by, status, attempts, accepted_at, next_attempt_at, forwarded_at)
SELECT 'old_sub_' || (g %% 500), 'old-' || g, 'photo_generation',
    '{"transaction_id":"old-' || g || '","external_subscription_id":"old_sub_' || (g %% 500)
        || '","code":"photo_generation","timestamp":1756684800}',
    md5(g::text), 0, 'bench', 'forwarded', 1, t, t, t + 1
FROM generate_series(%s::bigint, %s::bigint) AS g,
    LATERAL (SELECT %s::float8 + g * %s::float8 AS t) AS n
"""
# The rows a steady outbox holds: forwarded over the last 29 days, inside the retention (so
# the retention job, which runs at worker start, has nothing to prune). Older rows would
# measure the job deleting millions of rows during the run, not a full outbox.
FILL_DAYS = 29


async def throughput(stack: Stack, name: str, rows: int, options: argparse.Namespace) -> float:
    """Events/s from the first request until Lago holds the last event."""
    url = stack.database(name)
    if rows:
        say(f"{name}: inserting {rows:,} forwarded rows ...")
        fill_started = time.monotonic()
        step = 1_000_000
        base = time.time() - FILL_DAYS * 86_400
        spacing = FILL_DAYS * 86_400 / rows
        for lo in range(1, rows + 1, step):
            support.execute(url, FILL_FORWARDED, lo, min(rows, lo + step - 1), base, spacing)
        support.execute(url, "VACUUM ANALYZE usage_events")
        # The bulk fill's dirty pages are written out before the measured run, not during it.
        support.execute(url, "CHECKPOINT")
        size = support.scalar(url, "SELECT pg_size_pretty(pg_total_relation_size('usage_events'))")
        say(f"{name}: filled in {time.monotonic() - fill_started:.0f} s ({size} with indexes)")
    emulator = stack.emulator(f"emulator-{name}")
    emulator.seed(SUBSCRIPTIONS)
    env = support.gateway_env(url, emulator)
    key = support.create_key(env, name, "events:write")
    gateway = GatewayProcess(stack, env, support.postgres.free_port())
    gateway.start()
    progress = Progress(options.tp_events)
    started = time.monotonic()
    await produce(
        gateway.url, key, name, options.tp_events, options.producers, progress, resend_every=10**9
    )
    while emulator.stats()["events_stored"] < options.tp_events:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    assert gateway.process is not None
    gateway.process.stop()
    emulator.process.stop()
    rate = options.tp_events / elapsed
    print(
        f"  {name}: {rows:,} forwarded rows already in the outbox -> {options.tp_events:,} "
        f"events ingested and forwarded in {elapsed:.1f} s = {rate:,.0f} events/s"
    )
    return rate


# ---------------------------------------------------------------------------- main


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="unique soak events")
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--error-rate", type=float, default=0.2)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds of full outage")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--rows", type=int, default=10_000_000, help="forwarded rows, part 2")
    parser.add_argument("--tp-events", type=int, default=100_000, help="events per run, part 2")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    return parser.parse_args()


async def amain(options: argparse.Namespace) -> int:
    ok = True
    with Stack() as stack:
        if not options.skip_soak:
            ok = print_soak(await soak(stack, options), options) and ok
        if not options.skip_throughput:
            print(f"THROUGHPUT with a full outbox ({options.tp_events:,} events per run)")
            empty = await throughput(stack, "tp_empty", 0, options)
            full = await throughput(stack, "tp_full", options.rows, options)
            change = (full - empty) / empty
            passed = change >= -0.20
            ok = ok and passed
            print(
                f"RESULT throughput: {empty:,.0f} -> {full:,.0f} events/s with {options.rows:,}"
                f" forwarded rows ({change:+.1%}; a drop over 20% fails) -> "
                f"{'PASS' if passed else 'FAIL'}"
            )
    print(support.cpu_note())
    return 0 if ok else 1


def main() -> None:
    sys.exit(asyncio.run(amain(arguments())))


if __name__ == "__main__":
    main()
