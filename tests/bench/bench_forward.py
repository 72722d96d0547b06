"""Figure 3: drain 200,000 pending events from the outbox into the Lago emulator (its own
process, no added latency) with ``gateway worker``; beside it, in the same run, the naive
alternative: a loop of ``lago-python-client`` ``client.events.create(...)`` calls, one per
event, against the same emulator (2,000 events, the rate extrapolated).

    .venv/bin/python -m tests.bench.bench_forward [--events 200000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx

from tests.bench import support
from tests.bench.support import LAGO_KEY, METRIC_CODE, Stack, say

SUBSCRIPTIONS = 50

FILL_SQL = """
INSERT INTO usage_events (external_subscription_id, transaction_id, code, payload, fingerprint,
    needs_check, accepted_by, status, attempts, accepted_at, next_attempt_at)
SELECT 'sub_' || (g % 50), 'fw-' || g, 'photo_generation',
    jsonb_build_object('transaction_id', 'fw-' || g, 'external_subscription_id', 'sub_' || (g % 50),
        'code', 'photo_generation', 'timestamp', 1756684800 + g % 86400,
        'properties', jsonb_build_object('model', 'flux-1', 'seconds', g % 7 + 1))::text,
    md5(g::text), 0, 'bench', 'pending', 0, t, t
FROM generate_series(1, {count}) AS g,
    LATERAL (SELECT extract(epoch FROM now()) + g * 1e-6 AS t) AS n
"""


def naive_rate(emulator_url: str, count: int) -> float:
    """Events/s of one ``events.create`` call per event, as a product service would do it."""
    from lago_python_client.client import Client
    from lago_python_client.models.event import Event

    client = Client(api_key=LAGO_KEY, api_url=emulator_url)
    started = time.perf_counter()
    for i in range(count):
        client.events.create(
            Event(
                transaction_id=f"naive-{i}",
                external_subscription_id=f"sub_{i % SUBSCRIPTIONS}",
                code=METRIC_CODE,
                timestamp=1756684800 + i,
                properties={"model": "flux-1", "seconds": i % 7 + 1},
                precise_total_amount_cents=None,
            )
        )
    return count / (time.perf_counter() - started)


def pooled_rate(emulator_url: str, count: int) -> float:
    """For reference: one event per request, but over one kept-alive connection."""
    headers = {"Authorization": f"Bearer {LAGO_KEY}"}
    with httpx.Client(base_url=f"{emulator_url}/api/v1", headers=headers) as client:
        started = time.perf_counter()
        for i in range(count):
            event = {
                "transaction_id": f"pooled-{i}",
                "external_subscription_id": f"sub_{i % SUBSCRIPTIONS}",
                "code": METRIC_CODE,
                "timestamp": 1756684800 + i,
                "properties": {"model": "flux-1", "seconds": i % 7 + 1},
            }
            client.post("/events", json={"event": event}).raise_for_status()
        return count / (time.perf_counter() - started)


def stored(emulator: support.Emulator) -> int:
    return int(emulator.stats()["events_stored"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive", type=int, default=2_000, help="events for the naive loop")
    parser.add_argument("--concurrency", type=int, default=None, help="forward loops")
    parser.add_argument("--profile", help="a folder for a py-spy profile of the worker")
    options = parser.parse_args()
    with Stack() as stack:
        url = stack.database("bench_forward")
        emulator = stack.emulator()
        emulator.seed(SUBSCRIPTIONS)
        say("naive loop: lago-python-client events.create, one call per event ...")
        naive = naive_rate(emulator.url, options.naive)
        print(f"naive lago-python-client loop: {naive:,.0f} events/s", flush=True)
        pooled = pooled_rate(emulator.url, options.naive)
        print(
            f"for reference, one event a request over a kept-alive httpx connection: "
            f"{pooled:,.0f} events/s (the SDK builds a TLS context and opens a connection "
            "per call)",
            flush=True,
        )
        say(f"filling the outbox with {options.events:,} pending events ...")
        support.execute(url, FILL_SQL.format(count=int(options.events)))
        support.execute(url, "VACUUM ANALYZE usage_events")
        base = stored(emulator)
        extra = {}
        if options.concurrency:
            extra["forward_concurrency"] = options.concurrency
        env = support.gateway_env(url, emulator, **extra)
        spawned = time.perf_counter()
        worker = stack.worker(env)
        while stored(emulator) == base:
            if not worker.alive():
                raise SystemExit(f"the worker exited:\n{worker.log_tail()}")
            time.sleep(0.02)
        first = time.perf_counter()
        assert stack.pg is not None
        meter = support.CpuMeter(
            worker=worker.pid,
            postgres=support.postmaster_pid(stack.pg),
            emulator=emulator.process.pid,
        )
        spy = None
        if options.profile:
            out = Path(options.profile) / "forward.txt"
            spy = support.profile(worker.pid, 5, out)
        with meter:
            while stored(emulator) < base + options.events:
                if time.perf_counter() - first > 100:
                    raise SystemExit("the drain took over 100 s")
                time.sleep(0.05)
        done = time.perf_counter()
        if spy is not None:
            spy.wait(30)
        say(meter.summary())
        while support.scalar(url, "SELECT count(*) FROM usage_events WHERE status = 'pending'"):
            time.sleep(0.1)
        settled = time.perf_counter()
        stats = emulator.stats()
        forwarded = support.scalar(
            url, "SELECT count(*) FROM usage_events WHERE status = 'forwarded'"
        )
    rate = options.events / (done - first)
    print(
        f"gateway worker: {options.events:,} events in {done - first:.1f} s = {rate:,.0f} "
        f"events/s (from the first event in Lago to the last; {settled - spawned:.1f} s from "
        f"process start until the outbox recorded all as forwarded)"
    )
    print(
        f"check: {forwarded:,} forwarded in the outbox, {stats['events_stored']:,} stored in "
        f"the emulator, {stats['duplicate_rejections']} duplicate rejections"
    )
    print(
        f"RESULT forwarding: {rate:,.0f} events/s | naive lago-python-client loop "
        f"{naive:,.0f} events/s | ratio {rate / naive:.0f}x (aim >= 20x) | target 20,000/s: "
        f"{'met' if rate >= 20_000 else 'MISSED'}"
    )
    print(support.cpu_note())


if __name__ == "__main__":
    main()
