"""Figure 4: the RSS of one gateway process (``gateway serve``: API and forwarder in the same
process) while 1,000,000 events pass through it: accepted in batches of 100 from wrk, then
forwarded to the Lago emulator. RSS is sampled with psutil twice a second.

    .venv/bin/python -m tests.bench.bench_rss [--events 1000000]

Bounded: ingestion stops after 200 s, the drain after 90 s more, whatever the count.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

import psutil

from tests.bench import support
from tests.bench.bench_ingest_batch import BATCH_LUA
from tests.bench.support import Stack, say

SUBSCRIPTIONS = 50
INGEST_LIMIT_SECONDS = 200
DRAIN_LIMIT_SECONDS = 90

# Each wrk thread stops once its share of requests has been answered.
QUOTA_LUA = """
local answered = 0
function response(status, headers, body)
  answered = answered + 1
  if answered >= tonumber(quota) then
    wrk.thread:stop()
  end
end
"""


@dataclass
class Sample:
    at: float
    rss_mb: float
    accepted: int
    forwarded: int


class Sampler(threading.Thread):
    """RSS of the gateway process (and what has passed through) every ``interval`` seconds."""

    def __init__(self, pid: int, database_url: str, emulator: support.Emulator) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.database_url = database_url
        self.emulator = emulator
        self.samples: list[Sample] = []
        self.stopped = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stopped.wait(0.5):
                row = conn.execute("SELECT coalesce(max(id), 0) FROM usage_events").fetchone()
                accepted = int(row[0]) if row else 0
                forwarded = int(self.emulator.stats()["events_stored"])
                rss = self.process.memory_info().rss / 2**20
                at = time.monotonic() - self.started_at
                self.samples.append(Sample(at, rss, accepted, forwarded))

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


def slope_mb_per_100k(samples: list[Sample]) -> float:
    """Least-squares slope of RSS against events forwarded, in MB per 100,000 events."""
    xs = [s.forwarded / 100_000 for s in samples]
    ys = [s.rss_mb for s in samples]
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def start_wrk(
    stack: Stack, url: str, key: str, requests: int, connections: int
) -> subprocess.Popen[str]:
    binary = support.require_wrk()
    script = stack.workdir / "rss.lua"
    quota = f'quota = "{requests}"\n'
    script.write_text(support.lua_headers(key) + quota + BATCH_LUA + QUOTA_LUA + support.WRK_DONE)
    argv = [binary, "-t1", f"-c{connections}", f"-d{INGEST_LIMIT_SECONDS}s", "--timeout", "10s"]
    argv += ["-s", str(script), url, "--", f"rss{uuid.uuid4().hex[:6]}", str(SUBSCRIPTIONS), "100"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=8)
    options = parser.parse_args()
    support.require_wrk()
    target = options.events
    with Stack() as stack:
        url = stack.database("bench_rss")
        emulator = stack.emulator()
        emulator.seed(SUBSCRIPTIONS)
        env = support.gateway_env(url, emulator)
        key = support.create_key(env, "bench", "events:write")
        gateway = stack.gateway(env, workers=1)  # API and forwarder in one process
        sampler = Sampler(gateway.process.pid, url, emulator)
        sampler.start()
        say(f"sending {target:,} events in batches of 100 while the forwarder drains them ...")
        wrk = start_wrk(stack, gateway.url, key, target // 100, options.connections)
        started = time.monotonic()
        while time.monotonic() - started < INGEST_LIMIT_SECONDS:
            latest = sampler.latest()
            if (latest and latest.accepted >= target) or wrk.poll() is not None:
                break
            time.sleep(0.5)
        ingest_seconds = time.monotonic() - started
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)  # wrk sleeps out its -d otherwise
        wrk_output, _ = wrk.communicate(timeout=30)
        accepted = int(support.scalar(url, "SELECT count(*) FROM usage_events"))
        say(f"accepted {accepted:,} events in {ingest_seconds:.0f} s; draining ...")
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < DRAIN_LIMIT_SECONDS:
            latest = sampler.latest()
            if latest and latest.forwarded >= accepted:
                break
            time.sleep(0.5)
        time.sleep(3)  # a few samples at rest
        sampler.stopped.set()
        sampler.join(5)
        samples = sampler.samples
        forwarded = samples[-1].forwarded if samples else 0
        if not samples:
            raise SystemExit(f"no samples:\n{wrk_output}")
    rss = [s.rss_mb for s in samples]
    slope_all = slope_mb_per_100k([s for s in samples if s.forwarded >= forwarded * 0.1])
    # Flat means: no growth once warm (pools, caches and allocator arenas filled).
    slope = slope_mb_per_100k([s for s in samples if s.forwarded >= forwarded * 0.5])
    at = {
        p: next((s.rss_mb for s in samples if s.forwarded >= forwarded * p), rss[-1])
        for p in (0.1, 0.5, 1.0)
    }
    print(
        f"gateway RSS while {accepted:,} events were accepted and {forwarded:,} forwarded "
        f"({samples[-1].at:.0f} s, {len(samples)} samples): min {min(rss):.1f} MB, "
        f"max {max(rss):.1f} MB, last {rss[-1]:.1f} MB"
    )
    print(
        f"RSS at 10% / 50% / 100% of the events forwarded: {at[0.1]:.1f} / {at[0.5]:.1f} / "
        f"{at[1.0]:.1f} MB; slope after 10%: {slope_all:+.2f}, over the second half: "
        f"{slope:+.2f} MB per 100,000 events"
    )
    flat = abs(slope) < 1.0
    print(
        f"RESULT RSS: max {max(rss):.1f} MB (target < 200 MB: "
        f"{'met' if max(rss) < 200 else 'MISSED'}), second-half slope {slope:+.2f} MB/100k "
        f"events ({'flat' if flat else 'NOT flat'}), {forwarded:,} of {accepted:,} forwarded"
    )
    print(support.cpu_note())


if __name__ == "__main__":
    main()
