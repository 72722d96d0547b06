"""Real processes for scale-out tests and soak benchmarks: the Lago emulator, gateway API and
worker processes on one database, and a webhook subscriber that counts what it receives.

Everything listens on 127.0.0.1 only. Each process writes its output to a log file in the
work folder; ``Cluster.stop()`` ends every process it started, by its own id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.postgres import free_port

LAGO_KEY = "cluster-lago-key"
HMAC_KEY = "cluster-hmac-key-0123456789"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_file.close()

    def tail(self, lines: int = 30) -> str:
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Cluster:
    """Processes of one deployment, sharing ``database_url``."""

    workdir: Path
    database_url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    lago_url: str = ""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            {
                "GATEWAY_DATABASE_URL": self.database_url,
                "GATEWAY_LAGO_API_URL": self.lago_url,
                "GATEWAY_LAGO_API_KEY": LAGO_KEY,
                "GATEWAY_LAGO_WEBHOOK_HMAC_KEY": HMAC_KEY,
                "GATEWAY_RELAY_ALLOW_PRIVATE": "true",
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_LOG_JSON": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env_overrides)
        return env

    def _spawn(self, name: str, command: list[str], url: str | None = None, **env: str) -> Process:
        log_path = self.workdir / f"{name}.log"
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            command,
            env={**self.env(), **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        process = Process(name, popen, log_path, log_file, url)
        self.processes.append(process)
        return process

    def start_emulator(self, *, seed: int | None = 7) -> Process:
        port = free_port()
        command = [sys.executable, "-m", "lago.emulator", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--api-key", LAGO_KEY]
        if seed is not None:
            command += ["--seed", str(seed)]
        process = self._spawn("emulator", command, f"http://127.0.0.1:{port}")
        self.lago_url = process.url or ""
        wait_until_up(process, "/health")
        return process

    def start_api(self, name: str, port: int | None = None) -> Process:
        port = port or free_port()
        command = [sys.executable, "-m", "gateway", "serve", "--no-worker"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        return self._spawn(name, command, f"http://127.0.0.1:{port}")

    def start_worker(self, name: str) -> Process:
        """A ``gateway worker``; it logs at INFO, so ``worker.started`` tells when it runs."""
        command = [sys.executable, "-m", "gateway", "worker"]
        return self._spawn(name, command, GATEWAY_LOG_LEVEL="INFO")

    def cli(self, *args: str) -> str:
        """Run ``gateway ARGS`` to completion; its standard output."""
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            env=self.env(),
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"gateway {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def stop(self) -> None:
        """Ask every process to stop at once, then wait for each (SIGKILL after a grace time)."""
        for process in self.processes:
            if process.alive():
                process.popen.terminate()
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


def wait_for_log(process: Process, text: str, timeout: float = 60.0) -> None:
    """Wait until ``process`` has logged ``text`` (e.g. a worker's ``worker.started``)."""
    deadline = time.monotonic() + timeout
    while text not in process.log_path.read_text(errors="replace"):
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} never logged {text!r}:\n{process.tail()}")
        time.sleep(0.1)


def wait_until_up(process: Process, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
        try:
            if httpx.get(f"{process.url}{path}", timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not come up:\n{process.tail()}")
        time.sleep(0.1)


class Subscriber:
    """An HTTP server counting relay deliveries by (path, webhook-id); answers 204."""

    def __init__(self) -> None:
        self.received: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                with subscriber.lock:
                    subscriber.received[(self.path, self.headers.get("webhook-id", ""))] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Subscriber:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter(self.received)
