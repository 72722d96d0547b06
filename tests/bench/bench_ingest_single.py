"""Figure 2: single-event ingest through ``POST /api/v1/events`` at 50 concurrent connections,
durable PostgreSQL, load from wrk (latency distribution with ``--latency``); beside it, in the
same run, a bare FastAPI endpoint that validates the same body and stores nothing
(``tests/bench/bare_app.py``), served the same way.

    .venv/bin/python -m tests.bench.bench_ingest_single [--workers 1,2] [--seconds 10]
        [--meters off|on|both]

The emulator gets the shipped catalog and the 50 subscriptions are made through the gateway
(Basic), so the gateway knows their terms and, meters on, meters every event (timestamped
now). ``--meters both`` (default) runs the gateway with GATEWAY_METERS_ENABLED=false, then
true, and prints the drop.

The gateway runs ``serve --no-worker``: this figure is acceptance; forwarding is figure 3.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from tests.bench import support
from tests.bench.support import Stack, say

SUBSCRIPTIONS = 50
# How far behind schedule a paced request may go out and the rate still count as kept: wrk's
# own sending jitter on two shared cores reaches 15-20 ms against the bare endpoint too. A
# request sent late by d is at most d faster than it would have been, so a kept run's true
# p99 is under its measured p99 plus this.
LATE_MS = 25.0
COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"

SINGLE_LUA = """
local counter = 0
local started = 0
function setup(thread)
  started = started + 1
  thread:set("tid", started)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  subs = tonumber(args[2])
end
function request()
  counter = counter + 1
  return wrk.format(nil, "/api/v1/events", nil,
    '{"event":{"transaction_id":"' .. prefix .. counter ..
    '","external_subscription_id":"sub_' .. (counter % subs) ..
    '","code":"photo_generation","timestamp":' .. os.time() ..
    ',"properties":{"model":"flux-1","seconds":' .. (counter % 7 + 1) .. '}}}')
end
"""


def _paced(stack: Stack, url: str, lua: str, options: argparse.Namespace) -> support.WrkResult:
    """wrk again, with requests due on a fixed schedule at ``--paced-rate`` in total."""
    say(f"paced: {options.paced_rate:,} requests/s due, {options.connections} connections ...")
    threads = 2
    return support.run_wrk(
        url,
        support.PACED_LUA + lua + support.PACED_HOOKS,
        connections=options.connections,
        threads=threads,
        seconds=options.seconds,
        args=[uuid.uuid4().hex[:8], str(SUBSCRIPTIONS), str(options.paced_rate / threads)],
        workdir=stack.workdir,
    )


def _paced_line(label: str, result: support.WrkResult) -> str:
    return (
        f"{label} paced at {result.rate:,.0f}/s: p50 {result.p50_ms:.1f} ms, "
        f"p90 {result.p90_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms, "
        f"non-2xx {result.non_2xx}, sent behind schedule by <= {result.late_ms:.1f} ms"
    )


def _wrk(
    stack: Stack, url: str, lua: str, options: argparse.Namespace, seconds: float
) -> support.WrkResult:
    return support.run_wrk(
        url,
        lua,
        connections=options.connections,
        threads=2,
        seconds=seconds,
        args=[uuid.uuid4().hex[:8], str(SUBSCRIPTIONS)],
        workdir=stack.workdir,
    )


def gateway_run(
    stack: Stack, workers: int, meters: bool, options: argparse.Namespace
) -> tuple[float, support.WrkResult, support.WrkResult | None]:
    name = f"w{workers}-meters-{'on' if meters else 'off'}"
    url = stack.database(f"bench_single_{name.replace('-', '_')}")
    settings = dict(kv.removeprefix("GATEWAY_").split("=", 1) for kv in options.env)
    emulator, gateway, key = support.metered_gateway(
        stack, url, meters, name, workers, SUBSCRIPTIONS, settings
    )
    lua = support.lua_headers(key) + SINGLE_LUA
    say(f"warming up the gateway ({workers} API worker(s)) ...")
    _wrk(stack, gateway.url, lua, options, 3)
    before = support.scalar(url, "SELECT count(*) FROM usage_events")
    commits_before = support.scalar(url, COMMITS)
    assert stack.pg is not None
    spy = None
    if options.profile:
        out = Path(options.profile) / f"single-{name}.txt"
        spy = support.profile(gateway.process.pid, options.seconds - 1, out)
    meter = support.CpuMeter(gateway=gateway.process.pid, postgres=support.postmaster_pid(stack.pg))
    with meter:
        result = _wrk(stack, gateway.url, lua, options, options.seconds)
    meter.add("wrk", result.cpu_seconds, result.duration)
    say(meter.summary())
    after = support.scalar(url, "SELECT count(*) FROM usage_events")
    commits = support.scalar(url, COMMITS) - commits_before
    say(
        f"group commit: {commits / result.duration:,.0f} commits/s, "
        f"{(after - before) / max(1, commits):.1f} events per commit"
    )
    cpu_us = meter.result["gateway"] * result.duration / max(1, after - before) * 1e6
    say(f"gateway CPU per accepted event: {cpu_us:.1f} us")
    say(support.meter_rows(url))
    if meters and not support.scalar(url, "SELECT count(*) FROM usage_meters"):
        say("WARNING: meters on, yet no usage_meters rows: nothing was metered")
    if spy is not None:
        spy.wait(30)
    steady = _paced(stack, gateway.url, lua, options) if options.paced_rate else None
    if steady is not None:
        say(support.meter_rows(url))
    gateway.process.stop()
    emulator.process.stop()
    if result.non_2xx or result.socket_errors:
        say(f"WARNING: {result.non_2xx} non-2xx answers, {result.socket_errors} socket errors")
    return (after - before) / result.duration, result, steady


def baseline_run(
    stack: Stack, workers: int, options: argparse.Namespace
) -> tuple[support.WrkResult, support.WrkResult | None]:
    port = support.postgres.free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests.bench.bare_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--loop", "uvloop"]
    argv += ["--http", "gateway.http.serving:CoalescingHttpToolsProtocol"]  # as the gateway serves
    argv += ["--no-access-log", "--log-level", "warning"]
    process = stack.spawn(f"bare-w{workers}", argv)
    url = f"http://127.0.0.1:{port}"
    support.wait_http(f"{url}/docs", process)
    lua = support.lua_headers("unused") + SINGLE_LUA
    _wrk(stack, url, lua, options, 3)
    meter = support.CpuMeter(bare_app=process.pid)
    with meter:
        result = _wrk(stack, url, lua, options, options.seconds)
    meter.add("wrk", result.cpu_seconds, result.duration)
    say(meter.summary())
    steady = _paced(stack, url, lua, options) if options.paced_rate else None
    process.stop()
    return result, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="1,2", help="API worker counts to try")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", help="a folder for py-spy profiles of the gateway")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        help="a gateway setting, NAME=VALUE (GATEWAY_ prefix optional)",
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--paced-rate",
        type=int,
        default=5_000,
        help="also send this many events/s on a fixed schedule and report that latency (0: off)",
    )
    parser.add_argument(
        "--meters",
        choices=support.METERS_CHOICES,
        default="both",
        help="GATEWAY_METERS_ENABLED: off, on, or both in turn (prints the drop)",
    )
    options = parser.parse_args()
    support.require_wrk()
    counts = [int(w) for w in options.workers.split(",")]
    modes = support.meters_modes(options.meters)
    runs: dict[tuple[bool, int], tuple[float, support.WrkResult, support.WrkResult | None]] = {}
    baselines: dict[int, tuple[support.WrkResult, support.WrkResult | None]] = {}
    with Stack() as stack:
        for workers in counts:  # off then on, back to back: the pair sees the same machine
            for meters in modes:
                runs[meters, workers] = gateway_run(stack, workers, meters, options)
                rate, result, steady = runs[meters, workers]
                label = f"gateway, {workers} API worker(s), meters {'on' if meters else 'off'},"
                print(
                    f"{label} saturated (wrk): {rate:,.0f} events/s "
                    f"durable, p50 {result.p50_ms:.1f} ms, p90 {result.p90_ms:.1f} ms, "
                    f"p99 {result.p99_ms:.1f} ms, non-2xx {result.non_2xx}",
                    flush=True,
                )
                if steady is not None:
                    print(_paced_line(label, steady), flush=True)
        for workers in counts if not options.skip_baseline else []:
            baselines[workers] = (base, base_steady) = baseline_run(stack, workers, options)
            print(
                f"baseline bare FastAPI, {workers} worker(s), saturated (wrk): "
                f"{base.rate:,.0f} req/s, p50 {base.p50_ms:.1f} ms, p99 {base.p99_ms:.1f} ms",
                flush=True,
            )
            if base_steady is not None:
                print(_paced_line(f"baseline, {workers} worker(s),", base_steady), flush=True)
    _meters_results(runs, counts, modes)
    figures = {w: runs[modes[-1], w] for w in counts}  # meters on if measured: the default
    # The best configuration is the fastest of those within the p99 target, if any is.
    within = {w: f for w, f in figures.items() if f[1].p99_ms < 25} or figures
    best_workers, (best, best_result, _) = max(within.items(), key=lambda item: item[1][0])
    if options.skip_baseline:
        return
    base, _ = baselines[best_workers]
    met = best >= 5_000 and best_result.p99_ms < 25
    print(
        f"RESULT single ingest, saturated: {best:,.0f} events/s, p99 {best_result.p99_ms:.1f} ms "
        f"(best: {best_workers} API worker(s), {options.connections} connections, meters "
        f"{'on' if modes[-1] else 'off'}) | baseline "
        f"{base.rate:,.0f} req/s, p99 {base.p99_ms:.1f} ms | ratio {best / base.rate:.2f} "
        f"(aim >= 0.5) | 5,000/s with p99 < 25 ms: {'met' if met else 'MISSED'}"
    )
    for workers, (_, _, steady) in sorted(figures.items()):
        if steady is None:
            continue
        rate = options.paced_rate
        kept = steady.rate >= 0.98 * rate and not steady.non_2xx and steady.late_ms < LATE_MS
        met = kept and rate >= 5_000 and steady.p99_ms < 25
        print(
            f"RESULT single ingest paced, {workers} API worker(s): {steady.rate:,.0f}/s, "
            f"p99 {steady.p99_ms:.1f} ms (behind schedule <= {steady.late_ms:.1f} ms) | "
            f"target p99 < 25 ms at 5,000/s: {'met' if met else 'MISSED'}"
        )
    print(support.cpu_note())


def _meters_results(
    runs: dict[tuple[bool, int], tuple[float, support.WrkResult, support.WrkResult | None]],
    counts: list[int],
    modes: list[bool],
) -> None:
    """Meters on against off, per worker count, when both were measured."""
    if len(modes) < 2:
        return
    for workers in counts:
        off, off_result, off_steady = runs[False, workers]
        on, on_result, on_steady = runs[True, workers]
        drop = (off - on) / off * 100 if off else float("nan")
        paced = ""
        if off_steady is not None and on_steady is not None:
            paced = f" | paced p99 on {on_steady.p99_ms:.1f} ms, off {off_steady.p99_ms:.1f} ms"
        print(
            f"RESULT single ingest meters, {workers} API worker(s): on {on:,.0f} events/s "
            f"(p99 {on_result.p99_ms:.1f} ms) | off {off:,.0f} events/s (p99 "
            f"{off_result.p99_ms:.1f} ms) | drop {drop:.1f} %{paced} | target drop <= 10 %: "
            f"{'met' if drop <= 10 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
