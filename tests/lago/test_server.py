"""``python -m lago.emulator`` serves the same app in its own process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"emulator exited with {process.returncode}")
        try:
            httpx.get(f"{url}/health", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("emulator did not start within 10 s")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "lago.emulator", "--port", str(port), "--api-key", "K"]
    process = subprocess.Popen(command, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_served_emulator_ingests_and_reports(server: str) -> None:
    events = [
        {"transaction_id": f"t{i}", "external_subscription_id": "s", "code": "c"}
        for i in range(100)
    ]
    with httpx.Client(base_url=server, headers={"Authorization": "Bearer K"}) as client:
        client.post("/_emulator/reset")
        stored = client.post("/api/v1/events/batch", json={"events": events})
        client.post("/_emulator/faults", json={"error_rate": 1.0})
        faulted = client.post("/api/v1/events/batch", json={"events": events})
        client.post("/_emulator/faults", json={"clear": True})
        stats = client.get("/_emulator/stats").json()
        listed = client.get("/_emulator/events", params={"limit": 1}).json()

    assert stored.status_code == 200
    assert faulted.status_code == 500
    assert stats["events_stored"] == 100
    assert stats["requests_by_status"] == {"200": 1, "500": 1}
    assert listed["total"] == 100
    assert len(listed["events"]) == 1


def test_served_emulator_drops_connections_and_answers_like_a_proxy(server: str) -> None:
    event = {"event": {"transaction_id": "x1", "external_subscription_id": "s", "code": "c"}}
    with httpx.Client(base_url=server, headers={"Authorization": "Bearer K"}) as client:
        client.post("/_emulator/reset")
        client.post("/_emulator/faults", json={"outage_seconds": 30, "outage_kind": "reset"})
        # Closed unanswered: as a clean close (RemoteProtocolError) or a reset (ReadError),
        # whichever reaches the client first.
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post("/api/v1/events", json=event)
        client.post(
            "/_emulator/faults",
            json={"outage_seconds": 30, "outage_kind": "proxy", "outage_status": 502},
        )
        proxied = client.post("/api/v1/events", json=event)
        client.post("/_emulator/faults", json={"clear": True, "max_body_bytes": 64})
        too_large = client.post("/api/v1/events", json=event)
        client.post("/_emulator/faults", json={"clear": True})
        healthy = client.post("/api/v1/events", json=event)
        stats = client.get("/_emulator/stats").json()

    assert proxied.status_code == 502
    assert "retry-after" not in proxied.headers
    assert proxied.text.startswith("<html>")
    assert too_large.status_code == 413
    assert healthy.status_code == 200
    assert stats["faults_injected"]["reset"] == 1
    assert stats["events_stored"] == 1
