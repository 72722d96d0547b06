"""Background passes that meet an expected upstream answer log one line, not a traceback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway import worker
from gateway.errors import UpstreamUnavailable
from gateway.integrations.lago.client import LagoApiError, LagoUnavailable
from gateway.jobs import expected_upstream_failure, log_failure
from gateway.logging import get_logger


@pytest.mark.parametrize(
    "exc",
    [
        LagoApiError(404, {"status": 404, "error": "Not Found", "code": "wallet_not_found"}),
        LagoUnavailable("connection refused"),
        UpstreamUnavailable("Stripe is not configured (GATEWAY_STRIPE_SECRET_KEY)"),
    ],
)
def test_an_expected_upstream_answer_is_one_warning_line_without_traceback(exc: Exception) -> None:
    with capture_logs() as logs:
        try:
            raise exc
        except Exception as caught:
            log_failure(get_logger("test"), "job.pass_failed", caught, job="x")

    assert expected_upstream_failure(exc)
    assert len(logs) == 1
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["error"] == type(exc).__name__
    assert "exc_info" not in logs[0]


def test_a_bug_keeps_its_traceback_at_error_level() -> None:
    with capture_logs() as logs:
        try:
            raise KeyError("invoice")
        except Exception as caught:
            log_failure(get_logger("test"), "job.pass_failed", caught)

    assert not expected_upstream_failure(KeyError("invoice"))
    assert [(line["log_level"], line.get("exc_info")) for line in logs] == [("error", True)]


async def test_a_job_crashing_on_lagos_404_is_restarted_with_one_line_each_time() -> None:
    stop = asyncio.Event()
    runs = 0

    async def job(runtime: Any, stop_: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            stop.set()
        raise LagoApiError(404, {"status": 404, "error": "Not Found", "code": "not_found"})

    with capture_logs() as logs:
        await worker._supervise("packs.reconciler", job, None, stop)  # type: ignore[arg-type]

    crashed = [line for line in logs if line["event"] == "worker.job.crashed"]
    assert [(line["log_level"], "exc_info" in line) for line in crashed] == [("warning", False)] * 2
    assert crashed[0]["reason"] == "Lago answered 404: not_found"
