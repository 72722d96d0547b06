"""Shared machinery for the usage benchmarks: durable PostgreSQL, the Lago emulator and the
gateway as real processes, API keys, seeding, and wrk with a Lua script.

Everything started here is stopped by ``Stack.close()`` (the benchmarks use it as a context
manager), by process group id, so a benchmark that fails half-way leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]
LAGO_KEY = "bench-lago-key"
METRIC_CODE = "photo_generation"


def say(message: str) -> None:
    """Progress lines on stderr; the figures go to stdout."""
    print(message, file=sys.stderr, flush=True)


def use_uvloop() -> None:
    """The event loop the gateway's servers run on, for this process's own asyncio work."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def require_wrk() -> str:
    """The wrk binary, or exit with how to install it."""
    found = shutil.which("wrk")
    if found is None:
        print(
            "wrk is missing: install it with `apt-get install -y wrk` (Debian package) "
            "and run the benchmark again",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return found


@dataclass
class Process:
    """A child process in its own process group, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children of a killed leader (uvicorn workers) may outlive it in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    """What one benchmark run started; ``close`` stops it all in reverse order."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gw-bench-")))
    processes: list[Process] = field(default_factory=list)
    pg: postgres.PostgresServer | None = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    # PostgreSQL -----------------------------------------------------------------------------

    def postgres(self) -> postgres.PostgresServer:
        """A durable server (fsync on, synchronous commit): the figures are about durability."""
        if self.pg is None:
            say("starting durable PostgreSQL ...")
            self.pg = postgres.start(durable=True)
        return self.pg

    def database(self, name: str) -> str:
        """A fresh database with the gateway's schema."""
        from gateway.migrations.runner import upgrade

        url = postgres.create_database(self.postgres(), name)
        upgrade(url)
        return url

    # Processes ------------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def emulator(self, name: str = "emulator") -> Emulator:
        """The Lago emulator in its own process, no faults, no added latency."""
        port = postgres.free_port()
        argv = [sys.executable, "-m", "lago.emulator", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--api-key", LAGO_KEY, "--log-level", "warning"]
        process = self.spawn(name, argv)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", process)
        return Emulator(url, process)

    def gateway(
        self,
        env: dict[str, str],
        *,
        workers: int = 1,
        no_worker: bool = False,
        name: str = "gateway",
    ) -> Gateway:
        """``gateway serve`` on a free port."""
        port = postgres.free_port()
        argv = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", str(workers)]
        if no_worker:
            argv.append("--no-worker")
        process = self.spawn(name, argv, env)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", process)
        return Gateway(url, process)

    def worker(self, env: dict[str, str], name: str = "worker") -> Process:
        """``gateway worker``: the forwarder alone."""
        return self.spawn(name, [sys.executable, "-m", "gateway", "worker"], env)


def wait_http(url: str, process: Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer {url}:\n{process.log_tail()}")


@dataclass
class Emulator:
    url: str
    process: Process
    _control: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {LAGO_KEY}"},
            timeout=10.0,
        )

    def seed(self, subscriptions: int) -> list[str]:
        """A count metric, a plan and ``subscriptions`` active subscriptions (sub_0 ...)."""
        subs = [f"sub_{i}" for i in range(subscriptions)]
        with self._client() as client:
            client.post(
                "/billable_metrics",
                json={
                    "billable_metric": {
                        "name": "Photos",
                        "code": METRIC_CODE,
                        "aggregation_type": "count_agg",
                    }
                },
            ).raise_for_status()
            client.post(
                "/plans",
                json={
                    "plan": {
                        "name": "Basic",
                        "code": "basic",
                        "interval": "monthly",
                        "amount_cents": 999,
                        "amount_currency": "USD",
                        "pay_in_advance": False,
                        "charges": [],
                    }
                },
            ).raise_for_status()
            for sub in subs:
                client.post(
                    "/subscriptions",
                    json={
                        "subscription": {
                            "external_customer_id": f"cust_{sub}",
                            "plan_code": "basic",
                            "external_id": sub,
                        }
                    },
                ).raise_for_status()
        return subs

    def stats(self) -> dict[str, Any]:
        # One kept-alive client: httpx.get() builds a TLS context per call (~20 ms of CPU),
        # which, polled, would steal a core share from what is being measured.
        if self._control is None:
            self._control = httpx.Client(base_url=self.url, timeout=10.0)
        response = self._control.get("/_emulator/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def faults(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/_emulator/faults", json=settings, timeout=10.0).raise_for_status()


@dataclass
class Gateway:
    url: str
    process: Process


def gateway_env(database_url: str, emulator: Emulator, **extra: Any) -> dict[str, str]:
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_LAGO_API_URL": emulator.url,
        "GATEWAY_LAGO_API_KEY": LAGO_KEY,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    env.update({f"GATEWAY_{name.upper()}": str(value) for name, value in extra.items()})
    return env


def create_key(env: dict[str, str], name: str, *scopes: str) -> str:
    """``gateway keys create``; the key is alone on the last line of stdout."""
    argv = [sys.executable, "-m", "gateway", "keys", "create", "--name", name]
    for scope in scopes:
        argv += ["--scope", scope]
    done = subprocess.run(
        argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def apply_catalog(env: dict[str, str]) -> None:
    """``gateway catalog apply`` of the shipped catalog (lago/catalog.yaml) to the emulator."""
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "catalog",
        "apply",
        str(ROOT / "lago" / "catalog.yaml"),
    ]
    subprocess.run(
        argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )


def subscribe(gateway_url: str, key: str, subs: list[str], plan_code: str) -> None:
    """Subscribe ``cust_<sub>`` to ``plan_code`` as ``sub`` through the gateway's
    ``/api/v1/subscriptions``, so the gateway stores each subscription's terms (and meters it)."""
    import asyncio

    async def run() -> None:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(
            base_url=gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
        ) as client:

            async def one(sub: str) -> None:
                body = {
                    "subscription": {
                        "external_customer_id": f"cust_{sub}",
                        "plan_code": plan_code,
                        "external_id": sub,
                    }
                }
                async with limit:
                    response = await client.post("/api/v1/subscriptions", json=body)
                if response.status_code >= 300:
                    raise RuntimeError(f"subscribing {sub}: {response.status_code} {response.text}")

            await asyncio.gather(*(one(sub) for sub in subs))

    asyncio.run(run())


METERS_CHOICES = ("on", "off", "both")


def meters_modes(choice: str) -> list[bool]:
    """``--meters off|on|both`` as the GATEWAY_METERS_ENABLED values to run, off first."""
    return {"off": [False], "on": [True], "both": [False, True]}[choice]


def metered_gateway(
    stack: Stack,
    database_url: str,
    meters: bool,
    name: str,
    workers: int,
    subscriptions: int,
    settings: dict[str, str] | None = None,
) -> tuple[Emulator, Gateway, str]:
    """The emulator with the shipped catalog, ``gateway serve --no-worker`` with
    GATEWAY_METERS_ENABLED=``meters``, and ``sub_0`` ... subscribed to Basic through the gateway
    (so their terms are known and, meters on, every event of a catalog metric is metered).
    ``settings``: more GATEWAY_* settings (without the prefix). Returns an ``events:write``
    key too."""
    emulator = stack.emulator(f"emulator-{name}")
    env = gateway_env(
        database_url, emulator, **{**(settings or {}), "meters_enabled": str(meters).lower()}
    )
    apply_catalog(env)
    key = create_key(env, "bench", "events:write", "billing:write")
    gateway = stack.gateway(env, workers=workers, no_worker=True, name=f"gateway-{name}")
    subscribe(gateway.url, key, [f"sub_{i}" for i in range(subscriptions)], "basic_monthly")
    return emulator, gateway, key


def meter_rows(database_url: str) -> str:
    """What the meters hold, for the line printed after a run."""
    rows = scalar(database_url, "SELECT count(*) FROM usage_meters")
    units = scalar(
        database_url,
        "SELECT coalesce(sum(units), 0) FROM usage_meters WHERE group_key = ''",
    )
    return f"usage_meters: {rows:,} rows, {units:,.0f} units in the metric totals"


# wrk ------------------------------------------------------------------------------------------

WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%d,"requests":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.duration, summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  local late = 0
  for _, thread in ipairs(paced_threads or {}) do
    late = math.max(late, thread:get("late_max") or 0)
  end
  io.write(string.format('WRKPACED {"late_max_ms":%.3f}\\n', late))
  if done_extra then done_extra() end  -- a script's own summary lines
end
"""

# Prepend to a script whose ``init(args)`` takes the per-thread rate as its last argument:
# requests then go out on a fixed schedule (wrk's ``delay()``, a monotonic clock through
# LuaJIT's FFI) instead of back to back. wrk counts latency from the actual send, so a
# stall that holds requests past their slot would hide in it: ``late_max_ms`` reports how
# far behind schedule any request went out (near 0: the figure is the latency at that rate).
PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } paced_timespec;
int clock_gettime(int clk_id, paced_timespec *tp);
]]
local paced_ts = ffi.new("paced_timespec")
local function paced_now_ms()
  ffi.C.clock_gettime(1, paced_ts)
  return tonumber(paced_ts.tv_sec) * 1000 + tonumber(paced_ts.tv_nsec) / 1e6
end
paced_threads = {}
late_max = 0
local paced_slot = nil
local paced_interval = nil
function delay()
  local now = paced_now_ms()
  if paced_slot == nil then paced_slot = now end
  local due = paced_slot
  paced_slot = paced_slot + paced_interval
  if due < now then
    late_max = math.max(late_max, now - due)
    return 0
  end
  return due - now
end
"""

PACED_HOOKS = """
local paced_base_setup = setup
function setup(thread)
  if paced_base_setup then paced_base_setup(thread) end
  table.insert(paced_threads, thread)
end
local paced_base_init = init
function init(args)
  if paced_base_init then paced_base_init(args) end
  paced_interval = 1000 / tonumber(args[#args])
end
"""


@dataclass
class WrkResult:
    duration: float
    requests: int
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    non_2xx: int
    output: str
    cpu_seconds: float
    late_ms: float = 0.0  # paced runs: how far behind schedule a request went out, at most

    @property
    def rate(self) -> float:
        return self.requests / self.duration if self.duration else 0.0


def run_wrk(
    url: str,
    lua: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    args: list[str] | None = None,
    workdir: Path,
) -> WrkResult:
    """Run wrk with ``lua`` (plus a done() that prints a JSON summary) and parse it."""
    binary = require_wrk()
    script = workdir / f"wrk-{time.monotonic_ns()}.lua"
    script.write_text(lua + WRK_DONE)
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--latency", "--timeout", "10s", "-s", str(script), url]
    if args:
        argv += ["--", *args]
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = done.stdout + done.stderr
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed:\n{output}")
    data = json.loads(line[len("WRKJSON ") :])
    non_2xx = 0
    for ln in output.splitlines():
        if "Non-2xx or 3xx responses" in ln:
            non_2xx = int(ln.split(":")[1])
    return WrkResult(
        duration=data["duration_us"] / 1e6,
        requests=data["requests"],
        status_errors=data["status_errors"],
        socket_errors=data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        p999_ms=data["p999_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=non_2xx,
        output=output,
        cpu_seconds=cpu,
        late_ms=_paced_late(output),
    )


def _paced_late(output: str) -> float:
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKPACED ")), None)
    return float(json.loads(line[len("WRKPACED ") :])["late_max_ms"]) if line else 0.0


def lua_headers(key: str) -> str:
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )


# Database helpers -----------------------------------------------------------------------------


def scalar(database_url: str, sql: str, *params: Any) -> Any:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql, params or None).fetchone()
    return None if row is None else row[0]


def execute(database_url: str, sql: str, *params: Any) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql, params or None)


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` (and its children) with py-spy into collapsed stacks, if py-spy is there."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        say("py-spy is missing (pip install py-spy): no profile")
        return None
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    argv += ["--format", "raw", "--subprocesses", "--nonblocking", "--rate", "400", "-o", str(out)]
    say(f"profiling pid {pid} into {out}")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class CpuMeter:
    """CPU seconds used by process trees (and by everything else on the machine) over a window.

    On a 2-core machine shared by PostgreSQL, the gateway, the emulator and the load tool,
    this says who used the cores while a figure was measured.
    """

    def __init__(self, **roots: int) -> None:
        self.roots = roots
        self.started = 0.0
        self.before: dict[str, dict[int, float]] = {}
        self.machine_before = 0.0
        self.result: dict[str, float] = {}

    @staticmethod
    def _tree(pid: int) -> dict[int, float]:
        import psutil

        times: dict[int, float] = {}
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    cpu = proc.cpu_times()
                    times[proc.pid] = cpu.user + cpu.system
        except psutil.Error:
            pass
        return times

    @staticmethod
    def _machine() -> float:
        import psutil

        cpu = psutil.cpu_times()
        return float(cpu.user + cpu.system + cpu.nice + getattr(cpu, "softirq", 0.0))

    def __enter__(self) -> CpuMeter:
        self.started = time.monotonic()
        self.before = {name: self._tree(pid) for name, pid in self.roots.items()}
        self.machine_before = self._machine()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.started
        ours = 0.0
        for name, pid in self.roots.items():
            after = self._tree(pid)
            used = sum(t - self.before[name].get(p, 0.0) for p, t in after.items())
            self.result[name] = used / elapsed
            ours += used
        total = (self._machine() - self.machine_before) / elapsed
        self.result["rest of machine"] = max(0.0, total - ours / elapsed)

    def add(self, name: str, cpu_seconds: float, elapsed: float) -> None:
        """Account a finished child (wrk) measured by rusage over the same window."""
        share = cpu_seconds / elapsed if elapsed else 0.0
        self.result[name] = share
        rest = self.result.get("rest of machine", 0.0)
        self.result["rest of machine"] = max(0.0, rest - share)
        self.result["rest of machine"] = self.result.pop("rest of machine")

    def summary(self) -> str:
        parts = [f"{name} {share:.0%}" for name, share in self.result.items()]
        return "CPU (100% = one core): " + ", ".join(parts)


def postmaster_pid(server: postgres.PostgresServer) -> int:
    return int((server.datadir / "postmaster.pid").read_text().splitlines()[0])


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    say(f"{label}: {time.perf_counter() - started:.1f}s")


def cpu_note() -> str:
    return (
        f"{os.cpu_count()} CPU(s) shared by PostgreSQL, the gateway, the emulator and the load tool"
    )
