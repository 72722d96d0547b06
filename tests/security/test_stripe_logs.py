"""No log line, at any level, carries a Stripe request or response body.

The stripe SDK logs every body at DEBUG (``logging.getLogger("stripe")``) and prints it to
stderr when ``STRIPE_LOG`` (read once, at import) or ``stripe.log`` says ``debug``: a
PaymentIntent's ``client_secret``, a customer's email. The gateway's client silences both.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
import structlog

from gateway.integrations.stripe.client import StripeClient
from gateway.logging import configure_logging
from tests.collection.stripe_fake import API_KEY, FakeStripe

EMAIL = "leak-check@customer.test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def talkative_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Root logging at DEBUG and the SDK told to print bodies (as ``STRIPE_LOG=debug`` at
    import would have), then put back."""
    monkeypatch.setenv("STRIPE_LOG", "debug")
    monkeypatch.setattr(stripe._util, "STRIPE_LOG", "debug")
    monkeypatch.setattr(stripe, "log", "debug")
    stripe_logger = logging.getLogger("stripe")
    level, filters = stripe_logger.level, list(stripe_logger.filters)
    stripe_logger.setLevel(logging.NOTSET)  # as a process that never built a client has it
    configure_logging("DEBUG", json=True)
    try:
        yield
    finally:
        structlog.reset_defaults()
        stripe_logger.setLevel(level)
        stripe_logger.filters[:] = filters


async def _charge_through_the_fake() -> tuple[str, str]:
    """A customer with an email and a confirmed PaymentIntent (it has a client_secret)."""
    fake = FakeStripe()
    client = StripeClient(API_KEY, base_url="https://stripe.test", transport=fake)
    try:
        customer = await client.create_customer(
            external_id="acme", idempotency_key="customer-create-acme", email=EMAIL
        )
        method = fake.add_card(customer.id)
        intent = await client.create_payment_intent(
            {
                "amount": 1_000,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": method,
                "off_session": True,
                "confirm": True,
            },
            idempotency_key="invoice-1-attempt-1",
        )
        await client.retrieve_payment_intent(intent["id"])
    finally:
        await client.aclose()
    return intent["client_secret"], customer.id


@pytest.mark.usefixtures("talkative_stripe")
async def test_stripe_bodies_reach_no_log_even_at_debug_with_stripe_log_set(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)

    secret, customer_id = await _charge_through_the_fake()

    captured = capsys.readouterr()
    logged = "\n".join(
        [caplog.text, *(str(r.msg) for r in caplog.records), captured.out, captured.err]
    )
    assert secret.startswith("pi_") and "_secret_" in secret
    assert secret not in logged
    assert EMAIL not in logged
    assert not [r for r in caplog.records if r.name.startswith("stripe")]
    assert customer_id  # the flow ran


def test_stripe_log_set_before_import_prints_nothing_in_a_fresh_process() -> None:
    script = textwrap.dedent(
        """
        import asyncio, logging
        from gateway.logging import configure_logging
        from tests.security.test_stripe_logs import _charge_through_the_fake
        configure_logging("DEBUG", json=True)
        logging.getLogger().setLevel(logging.DEBUG)
        secret, _ = asyncio.run(_charge_through_the_fake())
        assert "_secret_" in secret
        """
    )
    env = {**os.environ, "STRIPE_LOG": "debug", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert EMAIL not in output
    assert "_secret_" not in output  # no client_secret, in a body or anywhere
