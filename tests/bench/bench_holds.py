"""Holds and balance reads at a fixed offered rate, durable PostgreSQL, load from wrk; beside
each, in the same run, the bare FastAPI endpoint (``tests/bench/bare_app.py``: same paths and
bodies, a small JSON answer, nothing stored) at the same offered rate.

    .venv/bin/python -m tests.bench.bench_holds [--workers 1,2] [--seconds 10]
        [--hold-rate 2000] [--balance-rate 5000] [--subscriptions 200] [--profile DIR]

The shipped catalog (lago/catalog.yaml) is applied to the emulator and ``--subscriptions``
customers are subscribed to Premium (unlimited photos: a hold never runs out) through the
gateway's ``/api/v1/subscriptions``, so the gateway knows their terms. Then:

- hold + capture: ``POST /gateway/holds`` then ``POST /gateway/holds/{id}/capture`` of that
  hold, 50 connections, requests sent on a fixed schedule (``support.PACED_LUA``) at twice the
  hold rate; wrk's ``response()`` queues each new hold's id and the thread's next request
  captures it. Latency per kind is timed in Lua (send to answer, like wrk's own);
- balance reads: ``GET /gateway/customers/{id}/balance``, customers in turn, paced the same way.

The gateway runs ``serve --no-worker`` (no expiry job: every hold is captured).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.bench import support
from tests.bench.support import Stack, say

PLAN = "premium_monthly"
CONNECTIONS = 50
THREADS = 2
LATE_MS = 25.0  # as bench_ingest_single: a paced rate is kept when nothing went out later
HOLD_P99_MS = 10.0
BALANCE_P99_MS = 5.0

# Per thread: holds answered 201 wait in a FIFO; the next request (any connection of the
# thread) captures the oldest. Latency per kind: send (request()) to answer (response()).
HOLDS_LUA = """
local counter = 0
local started = 0
local ready, head, tail = {}, 1, 0
local sent = {}
hold_lat, capture_lat, unexpected = {}, {}, 0
function setup(thread)
  started = started + 1
  thread:set("tid", started)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  subs = tonumber(args[2])
end
function request()
  if head <= tail then
    local id = ready[head]
    ready[head] = nil
    head = head + 1
    sent["c" .. id] = paced_now_ms()
    return wrk.format("POST", "/gateway/holds/" .. id .. "/capture", nil, nil)
  end
  counter = counter + 1
  local tx = prefix .. counter
  sent[tx] = paced_now_ms()
  return wrk.format("POST", "/gateway/holds", nil,
    '{"hold":{"external_subscription_id":"sub_' .. (counter % subs) ..
    '","code":"photo_generation","transaction_id":"' .. tx ..
    '","properties":{"quality":"sd"}}}')
end
function response(status, headers, body)
  local now = paced_now_ms()
  local id = body:match('"id":"([^"]+)"')
  local state = body:match('"status":"(%a+)"')
  if status == 201 and state == "held" then
    local tx = body:match('"transaction_id":"([^"]+)"')
    if sent[tx] then
      hold_lat[#hold_lat + 1] = now - sent[tx]
      sent[tx] = nil
    end
    tail = tail + 1
    ready[tail] = id
  elseif status == 200 and state == "captured" and sent["c" .. id] then
    capture_lat[#capture_lat + 1] = now - sent["c" .. id]
    sent["c" .. id] = nil
  else
    unexpected = unexpected + 1
  end
end
function done_extra()
  for _, kind in ipairs({"hold", "capture"}) do
    local all = {}
    for _, thread in ipairs(paced_threads) do
      for _, v in ipairs(thread:get(kind .. "_lat") or {}) do all[#all + 1] = v end
    end
    table.sort(all)
    local function pct(p)
      if #all == 0 then return 0 end
      return all[math.max(1, math.ceil(#all * p / 100))]
    end
    io.write(string.format(
      'WRKKIND {"kind":"%s","count":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
      '"max_ms":%.3f}\\n', kind, #all, pct(50), pct(90), pct(99), all[#all] or 0))
  end
  local bad = 0
  for _, thread in ipairs(paced_threads) do bad = bad + (thread:get("unexpected") or 0) end
  io.write(string.format('WRKKIND {"kind":"unexpected","count":%d}\\n', bad))
end
"""

BALANCE_LUA = """
local counter = 0
local started = 0
function setup(thread)
  started = started + 1
  thread:set("tid", started)
end
function init(args)
  subs = tonumber(args[2])
  counter = tid * 7919
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/gateway/customers/cust_sub_" .. (counter % subs) .. "/balance")
end
"""


@dataclass
class Kind:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Figure:
    """One paced wrk run: the overall result and, for holds, per kind."""

    result: support.WrkResult
    kinds: dict[str, Kind]
    unexpected: int
    cpu: str


def _kinds(output: str) -> tuple[dict[str, Kind], int]:
    kinds: dict[str, Kind] = {}
    unexpected = 0
    for line in output.splitlines():
        if not line.startswith("WRKKIND "):
            continue
        data = json.loads(line[len("WRKKIND ") :])
        kind = data.pop("kind")
        if kind == "unexpected":
            unexpected = int(data["count"])
        else:
            kinds[kind] = Kind(**data)
    return kinds, unexpected


def paced(
    stack: Stack,
    url: str,
    lua: str,
    rate: float,
    seconds: float,
    subs: int,
    meter: support.CpuMeter | None = None,
) -> Figure:
    """wrk with ``lua``, requests due on a fixed schedule at ``rate`` in total."""
    script = support.PACED_LUA + lua + support.PACED_HOOKS
    args = [uuid.uuid4().hex[:8], str(subs), str(rate / THREADS)]

    def run() -> support.WrkResult:
        return support.run_wrk(
            url,
            script,
            connections=CONNECTIONS,
            threads=THREADS,
            seconds=seconds,
            args=args,
            workdir=stack.workdir,
        )

    if meter is None:
        result = run()
        cpu = ""
    else:
        with meter:
            result = run()
        meter.add("wrk", result.cpu_seconds, result.duration)
        cpu = meter.summary()
        say(cpu)
    kinds, unexpected = _kinds(result.output)
    return Figure(result, kinds, unexpected, cpu)


def _kept(figure: Figure, rate: float) -> bool:
    result = figure.result
    return (
        result.rate >= 0.98 * rate
        and not result.non_2xx
        and not result.socket_errors
        and not figure.unexpected
        and result.late_ms < LATE_MS
    )


def _line(label: str, figure: Figure) -> str:
    result = figure.result
    text = (
        f"{label}: {result.rate:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, max {result.max_ms:.1f} ms, non-2xx {result.non_2xx}, "
        f"socket errors {result.socket_errors}, sent behind schedule by <= "
        f"{result.late_ms:.1f} ms"
    )
    for name, kind in figure.kinds.items():
        text += (
            f"\n    {name}: {kind.count / result.duration:,.0f}/s, p50 {kind.p50_ms:.2f} ms, "
            f"p90 {kind.p90_ms:.2f} ms, p99 {kind.p99_ms:.2f} ms, max {kind.max_ms:.1f} ms"
        )
    if figure.unexpected:
        text += f"\n    unexpected answers: {figure.unexpected}"
    return text


def _warm_customers(url: str, key: str, subs: list[str]) -> None:
    """One hold, capture and balance per customer: first-time reads (wallet, terms) are done
    before anything is measured."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
    ) as client:
        for sub in subs:
            body = {
                "hold": {
                    "external_subscription_id": sub,
                    "code": "photo_generation",
                    "transaction_id": f"warm-{sub}",
                    "properties": {"quality": "sd"},
                }
            }
            answer = client.post("/gateway/holds", json=body)
            answer.raise_for_status()
            hold_id = answer.json()["hold"]["id"]
            client.post(f"/gateway/holds/{hold_id}/capture").raise_for_status()
            client.get(f"/gateway/customers/cust_{sub}/balance").raise_for_status()


def gateway_run(stack: Stack, workers: int, options: argparse.Namespace) -> tuple[Figure, Figure]:
    url = stack.database(f"bench_holds_w{workers}")
    emulator = stack.emulator(f"emulator-w{workers}")
    env = support.gateway_env(url, emulator)
    say("applying lago/catalog.yaml to the emulator ...")
    support.apply_catalog(env)
    key = support.create_key(env, "bench", "events:write", "billing:write", "billing:read")
    gateway = stack.gateway(env, workers=workers, no_worker=True, name=f"gateway-w{workers}")
    subs = [f"sub_{i}" for i in range(options.subscriptions)]
    with support.timed(f"{len(subs)} subscriptions to {PLAN} through the gateway"):
        support.subscribe(gateway.url, key, subs, PLAN)
    _warm_customers(gateway.url, key, subs)
    holds_lua = support.lua_headers(key) + HOLDS_LUA
    balance_lua = support.lua_headers(key) + BALANCE_LUA
    assert stack.pg is not None
    postgres_pid = support.postmaster_pid(stack.pg)
    n = len(subs)

    def meter() -> support.CpuMeter:
        return support.CpuMeter(
            gateway=gateway.process.pid, postgres=postgres_pid, emulator=emulator.process.pid
        )

    def spy(name: str) -> Path | None:
        if not options.profile:
            return None
        return Path(options.profile) / f"{name}-w{workers}.txt"

    say(f"holds: {options.hold_rate:,} holds/s due ({workers} API worker(s)), warming up ...")
    paced(stack, gateway.url, holds_lua, 2 * options.hold_rate, 3, n)
    holds_before = support.scalar(url, "SELECT count(*) FROM holds WHERE status = 'captured'")
    out = spy("holds")
    profiler = support.profile(gateway.process.pid, options.seconds - 1, out) if out else None
    holds = paced(stack, gateway.url, holds_lua, 2 * options.hold_rate, options.seconds, n, meter())
    if profiler is not None:
        profiler.wait(30)
    captured = support.scalar(url, "SELECT count(*) FROM holds WHERE status = 'captured'")
    events = support.scalar(url, "SELECT count(*) FROM usage_events")
    units = support.scalar(
        url,
        "SELECT coalesce(sum(units), 0) FROM usage_meters "
        "WHERE metric = 'photo_generation' AND group_key = ''",
    )
    say(
        f"captured in the measured window: {captured - holds_before:,}; usage events stored: "
        f"{events:,}; photo_generation units on the meters: {units:,.0f}"
    )

    say(f"balance: {options.balance_rate:,} reads/s due, warming up ...")
    paced(stack, gateway.url, balance_lua, options.balance_rate, 3, n)
    out = spy("balance")
    profiler = support.profile(gateway.process.pid, options.seconds - 1, out) if out else None
    balance = paced(
        stack, gateway.url, balance_lua, options.balance_rate, options.seconds, n, meter()
    )
    if profiler is not None:
        profiler.wait(30)
    gateway.process.stop()
    emulator.process.stop()
    return holds, balance


def baseline_run(stack: Stack, workers: int, options: argparse.Namespace) -> tuple[Figure, Figure]:
    port = support.postgres.free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests.bench.bare_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--loop", "uvloop"]
    argv += ["--http", "gateway.http.serving:CoalescingHttpToolsProtocol"]  # as the gateway serves
    argv += ["--no-access-log", "--log-level", "warning"]
    process = stack.spawn(f"bare-w{workers}", argv)
    url = f"http://127.0.0.1:{port}"
    support.wait_http(f"{url}/docs", process)
    n = options.subscriptions
    holds_lua = support.lua_headers("unused") + HOLDS_LUA
    balance_lua = support.lua_headers("unused") + BALANCE_LUA
    paced(stack, url, holds_lua, 2 * options.hold_rate, 3, n)
    holds = paced(
        stack,
        url,
        holds_lua,
        2 * options.hold_rate,
        options.seconds,
        n,
        support.CpuMeter(bare_app=process.pid),
    )
    paced(stack, url, balance_lua, options.balance_rate, 3, n)
    balance = paced(
        stack,
        url,
        balance_lua,
        options.balance_rate,
        options.seconds,
        n,
        support.CpuMeter(bare_app=process.pid),
    )
    process.stop()
    return holds, balance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="1,2", help="API worker counts to try")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hold-rate", type=int, default=2_000, help="holds/s (captures too)")
    parser.add_argument("--balance-rate", type=int, default=5_000, help="balance reads/s")
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--profile", help="a folder for py-spy profiles of the gateway")
    options = parser.parse_args()
    support.require_wrk()
    counts = [int(w) for w in options.workers.split(",")]
    figures: dict[int, tuple[Figure, Figure]] = {}
    baselines: dict[int, tuple[Figure, Figure]] = {}
    with Stack() as stack:
        for workers in counts:
            figures[workers] = holds, balance = gateway_run(stack, workers, options)
            print(_line(f"gateway, {workers} API worker(s), hold + capture paced", holds))
            print(f"    {holds.cpu}")
            print(_line(f"gateway, {workers} API worker(s), balance paced", balance))
            print(f"    {balance.cpu}", flush=True)
        for workers in counts:
            baselines[workers] = holds, balance = baseline_run(stack, workers, options)
            print(_line(f"baseline bare FastAPI, {workers} worker(s), hold + capture", holds))
            print(f"    {holds.cpu}")
            print(_line(f"baseline bare FastAPI, {workers} worker(s), balance", balance))
            print(f"    {balance.cpu}", flush=True)
    hold_rate, balance_rate = options.hold_rate, options.balance_rate
    for workers in counts:
        holds, balance = figures[workers]
        base_holds, base_balance = baselines[workers]
        kept = _kept(holds, 2 * hold_rate)
        hold_p99 = max((k.p99_ms for k in holds.kinds.values()), default=float("nan"))
        met = kept and hold_p99 < HOLD_P99_MS
        held = holds.kinds["hold"].count / holds.result.duration
        print(
            f"RESULT holds, {workers} API worker(s): {held:,.0f} "
            f"holds/s + captures, hold p99 {holds.kinds['hold'].p99_ms:.2f} ms, capture p99 "
            f"{holds.kinds['capture'].p99_ms:.2f} ms (rate {'kept' if kept else 'NOT kept'}) | "
            f"bare hold p99 {base_holds.kinds['hold'].p99_ms:.2f} ms, capture p99 "
            f"{base_holds.kinds['capture'].p99_ms:.2f} ms | target p99 < {HOLD_P99_MS:g} ms at "
            f"{hold_rate:,} holds/s: {'MET' if met else 'MISSED'}"
        )
        kept = _kept(balance, balance_rate)
        met = kept and balance.result.p99_ms < BALANCE_P99_MS
        print(
            f"RESULT balance, {workers} API worker(s): {balance.result.rate:,.0f} reads/s, "
            f"p50 {balance.result.p50_ms:.2f} ms, p99 {balance.result.p99_ms:.2f} ms (rate "
            f"{'kept' if kept else 'NOT kept'}) | bare p99 {base_balance.result.p99_ms:.2f} ms "
            f"at {base_balance.result.rate:,.0f}/s | target p99 < {BALANCE_P99_MS:g} ms at "
            f"{balance_rate:,} reads/s: {'MET' if met else 'MISSED'}"
        )
    print(support.cpu_note())


if __name__ == "__main__":
    main()
