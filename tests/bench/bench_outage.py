"""Lago outages under steady ingest: how fast the forwarder is fresh again after Lago returns.

A gateway API process (``gateway serve --no-worker``) takes a steady stream of batch posts;
``gateway worker`` forwards to the Lago emulator (its own process). Lago then goes away for
``--outages`` seconds the way a real outage looks to a client: a proxy in front of it answers
503 with no ``Retry-After``. Ingest goes on throughout. From the moment Lago is back, the
benchmark measures the seconds until the first event reaches Lago again and until every
event due at that moment is forwarded (the backlog is empty), and the forwarding rate from
the first event in Lago to the empty backlog (as the baseline is timed). Baseline, in the
same run: the worker's full rate draining a filled outbox with Lago healthy.

    .venv/bin/python -m tests.bench.bench_outage [--outages 25 300] [--rate 2000]
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass

import httpx

from tests.bench import support
from tests.bench.bench_forward import FILL_SQL
from tests.bench.support import METRIC_CODE, Stack, say

SUBSCRIPTIONS = 50
GOAL_SHORT_SECONDS = 10.0
GOAL_RATE = 20_000.0


class SteadyIngest:
    """Posts batches of 100 to the gateway at ``rate`` events/s, from a thread, until stopped."""

    def __init__(self, url: str, key: str, rate: float) -> None:
        self.url, self.key, self.rate = url, key, rate
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyIngest:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        interval = 100 / self.rate
        with httpx.Client(base_url=self.url, headers=headers, timeout=10.0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                events = [self._event(self.sent + i) for i in range(100)]
                response = client.post("/api/v1/events/batch", json={"events": events})
                if response.status_code == 200:
                    self.sent += 100
                else:
                    self.failed += 1
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    @staticmethod
    def _event(n: int) -> dict[str, object]:
        return {
            "transaction_id": f"steady-{n}",
            "external_subscription_id": f"sub_{n % SUBSCRIPTIONS}",
            "code": METRIC_CODE,
            "timestamp": 1756684800 + n % 86400,
            "properties": {"model": "flux-1"},
        }


@dataclass
class Recovery:
    outage: float
    backlog: int
    seconds: float  # from Lago's return until the backlog is empty
    found: float  # from Lago's return until the first event reached it
    rate: float  # events/s from the first event in Lago until the backlog is empty


class Backlog:
    """The events due at Lago's return that are still pending, read cheaply (one kept
    connection, the outbox's own due index), so measuring steals no CPU from the drain."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def count(self, due_by: float) -> int:
        found = self._one("SELECT count(*)", due_by)
        return found if isinstance(found, int) else 0

    def left(self, due_by: float) -> bool:
        return self._one("SELECT 1", due_by, " LIMIT 1") is not None

    def wal(self) -> tuple[int, int, int]:
        """(checkpoints so far, full-page images written to the WAL, WAL bytes): a checkpoint
        during the drain makes the first change to every page after it write the whole page."""
        checkpoints = self._conn.execute(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
        wal = self._conn.execute("SELECT wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
        assert checkpoints is not None and wal is not None
        return int(checkpoints[0]), int(wal[0]), int(wal[1])

    def _one(self, select: str, due_by: float, tail: str = "") -> object:
        row = self._conn.execute(
            f"{select} FROM usage_events WHERE status = 'pending' AND next_attempt_at <= %s{tail}",
            (due_by,),
        ).fetchone()
        return None if row is None else row[0]


def outage_run(
    url: str, emulator: support.Emulator, seconds: float, roots: dict[str, int]
) -> Recovery:
    """One outage while ingest goes on; the recovery measured from Lago's return.

    The backlog is what was due when Lago came back: events accepted during the outage keep
    their place (``next_attempt_at`` is their acceptance, or the failed attempt), and events
    accepted after the return are due later.
    """
    say(f"outage of {seconds:.0f} s (a proxy's 503, no Retry-After) ...")
    emulator.faults(outage_seconds=seconds, outage_kind="proxy", outage_status=503)
    back_at = time.monotonic() + seconds
    time.sleep(max(0.0, back_at - time.monotonic()))
    returned, due_by = time.monotonic(), time.time()
    backlog = Backlog(url)
    size = backlog.count(due_by)
    stored_before = int(emulator.stats()["events_stored"])
    while int(emulator.stats()["events_stored"]) == stored_before:
        time.sleep(0.01)
    first = time.monotonic()  # the forwarder found Lago back: the drain starts
    first_stored = int(emulator.stats()["events_stored"])
    meter = support.CpuMeter(**roots)
    wal_before = backlog.wal()
    timeline: list[int] = []
    next_sample = first + 1.0
    with meter:
        while backlog.left(due_by):
            if time.monotonic() - returned > 600:
                raise SystemExit("the backlog was not drained within 600 s of Lago's return")
            if time.monotonic() >= next_sample:
                timeline.append(int(emulator.stats()["events_stored"]) - first_stored)
                next_sample += 1.0
            time.sleep(0.1)
    done = time.monotonic()
    stored = int(emulator.stats()["events_stored"]) - first_stored
    wal = [after - before for after, before in zip(backlog.wal(), wal_before, strict=True)]
    backlog.close()
    say(f"  first event in Lago {first - returned:.2f} s after its return")
    say(f"  events stored in Lago since the first, each second: {timeline}")
    say(f"  {meter.summary()}")
    say(
        f"  PostgreSQL while draining: {wal[0]} checkpoint(s), {wal[1]:,} full-page "
        f"images, {wal[2] / 2**20:,.0f} MiB of WAL"
    )
    return Recovery(seconds, size, done - returned, first - returned, stored / (done - first))


def full_rate(stack: Stack, emulator: support.Emulator, events: int) -> float:
    """Baseline: the worker draining ``events`` pre-filled events, Lago healthy throughout."""
    url = stack.database("bench_outage_baseline")
    support.execute(url, FILL_SQL.format(count=events))
    support.execute(url, "VACUUM ANALYZE usage_events")
    base = int(emulator.stats()["events_stored"])
    worker = stack.worker(support.gateway_env(url, emulator), name="baseline-worker")
    while int(emulator.stats()["events_stored"]) == base:
        time.sleep(0.02)
    first = time.perf_counter()
    while int(emulator.stats()["events_stored"]) < base + events:
        if not worker.alive():
            raise SystemExit(f"the baseline worker exited:\n{worker.log_tail()}")
        time.sleep(0.05)
    rate = events / (time.perf_counter() - first)
    worker.stop()
    # Its 100,000 dead row versions would otherwise be vacuumed during the outage runs.
    assert stack.pg is not None
    support.execute(stack.pg.admin_url, 'DROP DATABASE "bench_outage_baseline"')
    support.execute(stack.pg.admin_url, "CHECKPOINT")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outages", type=float, nargs="+", default=[25.0, 300.0])
    parser.add_argument("--rate", type=float, default=2000.0, help="ingest, events/s")
    parser.add_argument("--baseline-events", type=int, default=100_000)
    options = parser.parse_args()
    with Stack() as stack:
        emulator = stack.emulator()
        emulator.seed(SUBSCRIPTIONS)
        say("baseline: the worker's full rate on a filled outbox, Lago healthy ...")
        baseline = full_rate(stack, emulator, options.baseline_events)
        print(f"baseline: worker drains a filled outbox at {baseline:,.0f} events/s", flush=True)
        url = stack.database("bench_outage")
        env = support.gateway_env(url, emulator)
        api = stack.gateway(env, no_worker=True)
        worker = stack.worker(env)
        assert stack.pg is not None
        roots = {
            "worker": worker.pid,
            "api": api.process.pid,
            "postgres": support.postmaster_pid(stack.pg),
            "emulator": emulator.process.pid,
        }
        key = support.create_key(env, "bench-outage", "events:write")
        results = []
        with SteadyIngest(api.url, key, options.rate) as ingest:
            time.sleep(10)  # steady state: Lago known to the gateway, the outbox drained
            for seconds in options.outages:
                results.append(outage_run(url, emulator, seconds, roots))
                last = results[-1]
                print(
                    f"outage {last.outage:.0f} s: backlog {last.backlog:,} events at Lago's "
                    f"return, first event in Lago {last.found:.1f} s later, empty "
                    f"{last.seconds:.1f} s later, draining at {last.rate:,.0f} events/s "
                    "(ingest going on)",
                    flush=True,
                )
                time.sleep(5)
        print(f"ingest: {ingest.sent:,} events accepted, {ingest.failed} posts failed")
    for r in results:
        short = r.outage <= 60
        goal = (
            f"empty within {GOAL_SHORT_SECONDS:.0f} s"
            if short
            else f"draining >= {GOAL_RATE:,.0f}/s"
        )
        met = r.seconds <= GOAL_SHORT_SECONDS if short else r.rate >= GOAL_RATE
        print(
            f"RESULT outage {r.outage:.0f} s: first event {r.found:.1f} s and empty "
            f"{r.seconds:.1f} s after return, "
            f"{r.rate:,.0f} events/s draining | baseline full rate {baseline:,.0f} events/s | "
            f"goal {goal}: {'met' if met else 'MISSED'}"
        )
    print(support.cpu_note())


if __name__ == "__main__":
    main()
