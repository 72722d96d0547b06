"""Figure 1: batch ingest through ``POST /api/v1/events/batch``, 100 events a request,
durable PostgreSQL, load from wrk; beside it, in the same run, a plain multi-row
``INSERT … ON CONFLICT DO NOTHING`` of the same rows (psycopg, 100 rows a statement,
one commit each, same concurrency) into the same table.

    .venv/bin/python -m tests.bench.bench_ingest_batch [--workers 1,2] [--seconds 10]
        [--meters off|on|both]

The emulator gets the shipped catalog and the 50 subscriptions are made through the gateway
(Basic), so the gateway knows their terms and, meters on, meters every event (timestamped
now). ``--meters both`` (default) runs the gateway with GATEWAY_METERS_ENABLED=false, then
true, and prints the drop.

The gateway runs ``serve --no-worker``: this figure is acceptance; forwarding is figure 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

from tests.bench import support
from tests.bench.support import METRIC_CODE, Stack, say

SUBSCRIPTIONS = 50
BASE_TS = 1756684800

BATCH_LUA = """
local counter = 0
local started = 0
function setup(thread)
  started = started + 1
  thread:set("tid", started)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  subs = tonumber(args[2])
  per = tonumber(args[3])
end
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, per do
    local n = counter * per + i
    parts[i] = '{"transaction_id":"' .. prefix .. n ..
      '","external_subscription_id":"sub_' .. (n % subs) ..
      '","code":"photo_generation","timestamp":' .. os.time() ..
      ',"properties":{"model":"flux-1","seconds":' .. (n % 7 + 1) .. '}}'
  end
  return wrk.format(nil, "/api/v1/events/batch", nil,
    '{"events":[' .. table.concat(parts, ",") .. ']}')
end
"""

COLUMNS = (
    "external_subscription_id, transaction_id, code, payload, fingerprint, needs_check, "
    "accepted_by, status, attempts, accepted_at, next_attempt_at"
)


def _values(prefix: str, n: int, now: float) -> str:
    """The row the gateway stores for wrk's event number ``n``, as an SQL literal (same sizes)."""
    sub = f"sub_{n % SUBSCRIPTIONS}"
    tx = f"{prefix}{n}"
    payload = (
        f'{{"transaction_id":"{tx}","external_subscription_id":"{sub}","code":"{METRIC_CODE}",'
        f'"timestamp":{BASE_TS + n % 86400},'
        f'"properties":{{"model":"flux-1","seconds":{n % 7 + 1}}}}}'
    )
    fingerprint = f"{n:032x}"
    return (
        f"('{sub}','{tx}','{METRIC_CODE}','{payload}','{fingerprint}',"
        f"0,'bench','pending',0,{now},{now})"
    )


async def baseline_insert(url: str, connections: int, per: int, seconds: float) -> float:
    """Rows/s of plain multi-row INSERTs, one autocommitted statement at a time per connection.

    The statement text is built with literals: binding 1,100 parameters a statement in Python
    would make this client, not PostgreSQL, the bottleneck.
    """
    import psycopg

    head = f"INSERT INTO usage_events ({COLUMNS}) VALUES "
    tail = " ON CONFLICT (external_subscription_id, transaction_id) DO NOTHING"
    nonce = uuid.uuid4().hex[:8]
    deadline = 0.0
    inserted = 0

    async def one(index: int) -> None:
        nonlocal inserted
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            counter = 0
            prefix = f"{nonce}-{index}-"
            while time.monotonic() < deadline:
                counter += 1
                now = time.time()
                rows = ",".join(_values(prefix, counter * per + i, now) for i in range(1, per + 1))
                cursor = await conn.execute((head + rows + tail).encode())
                inserted += cursor.rowcount

    started = time.monotonic()
    deadline = started + seconds
    cpu = os.times()
    await asyncio.gather(*(one(i) for i in range(connections)))
    elapsed = time.monotonic() - started
    used = (os.times().user - cpu.user) + (os.times().system - cpu.system)
    say(f"baseline client used {used / elapsed:.0%} of one CPU building and sending rows")
    return inserted / elapsed


def gateway_run(
    stack: Stack,
    url: str,
    workers: int,
    meters: bool,
    options: argparse.Namespace,
) -> tuple[float, support.WrkResult]:
    connections, per, seconds = options.connections, options.per, options.seconds
    profile_dir = Path(options.profile) if options.profile else None
    name = f"w{workers}-meters-{'on' if meters else 'off'}"
    emulator, gateway, key = support.metered_gateway(
        stack, url, meters, name, workers, SUBSCRIPTIONS
    )
    lua = support.lua_headers(key) + BATCH_LUA
    say(f"warming up the gateway ({workers} API worker(s)) ...")
    support.run_wrk(
        gateway.url,
        lua,
        connections=connections,
        threads=1,
        seconds=3,
        args=[f"warm{uuid.uuid4().hex[:6]}", str(SUBSCRIPTIONS), str(per)],
        workdir=stack.workdir,
    )
    before = support.scalar(url, "SELECT count(*) FROM usage_events")
    spy = None
    if profile_dir:
        out = profile_dir / f"batch-{name}.txt"
        spy = support.profile(gateway.process.pid, seconds - 1, out)
    assert stack.pg is not None
    meter = support.CpuMeter(gateway=gateway.process.pid, postgres=support.postmaster_pid(stack.pg))
    with meter:
        result = support.run_wrk(
            gateway.url,
            lua,
            connections=connections,
            threads=1,
            seconds=seconds,
            args=[f"run{uuid.uuid4().hex[:6]}", str(SUBSCRIPTIONS), str(per)],
            workdir=stack.workdir,
        )
    meter.add("wrk", result.cpu_seconds, result.duration)
    say(meter.summary())
    after = support.scalar(url, "SELECT count(*) FROM usage_events")
    cpu_us = meter.result["gateway"] * result.duration / max(1, after - before) * 1e6
    say(f"gateway CPU per accepted event: {cpu_us:.1f} us")
    say(support.meter_rows(url))
    if meters and not support.scalar(url, "SELECT count(*) FROM usage_meters"):
        say("WARNING: meters on, yet no usage_meters rows: nothing was metered")
    if spy is not None:
        spy.wait(30)
    gateway.process.stop()
    emulator.process.stop()
    if result.non_2xx or result.socket_errors:
        say(f"WARNING: {result.non_2xx} non-2xx answers, {result.socket_errors} socket errors")
    return (after - before) / result.duration, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="1,2", help="API worker counts to try")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--per", type=int, default=100, help="events per request")
    parser.add_argument("--profile", help="a folder for py-spy profiles of the gateway")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--meters",
        choices=support.METERS_CHOICES,
        default="both",
        help="GATEWAY_METERS_ENABLED: off, on, or both in turn (prints the drop)",
    )
    options = parser.parse_args()
    support.require_wrk()
    modes = support.meters_modes(options.meters)
    counts = [int(w) for w in options.workers.split(",")]
    runs: dict[tuple[bool, int], tuple[float, support.WrkResult]] = {}
    with Stack() as stack:
        for workers in counts:  # off then on, back to back: the pair sees the same machine
            for meters in modes:
                label = "on" if meters else "off"
                url = stack.database(f"bench_batch_w{workers}_meters_{label}")
                runs[meters, workers] = gateway_run(stack, url, workers, meters, options)
                rate, result = runs[meters, workers]
                print(
                    f"gateway, {workers} API worker(s), meters {label}: {rate:,.0f} events/s "
                    f"durably accepted ({result.rate:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                    f"p99 {result.p99_ms:.1f} ms, non-2xx {result.non_2xx}) | "
                    f"{support.meter_rows(url)}",
                    flush=True,
                )
        baseline = float("nan")
        if not options.skip_baseline:
            say("baseline: plain multi-row INSERT ... ON CONFLICT DO NOTHING ...")
            base_url = stack.database("bench_batch_baseline")
            baseline = asyncio.run(
                baseline_insert(base_url, options.connections, options.per, options.seconds)
            )
    figures = {w: runs[modes[-1], w] for w in counts}  # meters on if measured: the default
    best_workers, (best, _) = max(figures.items(), key=lambda item: item[1][0])
    print(f"baseline, plain INSERT of the same rows: {baseline:,.0f} rows/s")
    _meters_results(runs, counts, modes)
    print(
        f"RESULT batch ingest: {best:,.0f} events/s (best: {best_workers} API worker(s), "
        f"{options.connections} connections, {options.per} events/request, meters "
        f"{'on' if modes[-1] else 'off'}) | baseline "
        f"{baseline:,.0f} rows/s | ratio {best / baseline:.2f} (aim >= 0.5) | target 40,000: "
        f"{'met' if best >= 40_000 else 'MISSED'}"
    )
    print(support.cpu_note())


def _meters_results(
    runs: dict[tuple[bool, int], tuple[float, support.WrkResult]],
    counts: list[int],
    modes: list[bool],
) -> None:
    """Meters on against off, per worker count, when both were measured."""
    if len(modes) < 2:
        return
    for workers in counts:
        off, on = runs[False, workers][0], runs[True, workers][0]
        drop = (off - on) / off * 100 if off else float("nan")
        print(
            f"RESULT batch ingest meters, {workers} API worker(s): on {on:,.0f} events/s | "
            f"off {off:,.0f} events/s | drop {drop:.1f} % | target drop <= 10 %: "
            f"{'met' if drop <= 10 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
