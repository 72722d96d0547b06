"""The verification pieces on their own: no database, no HTTP."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import UpstreamUnavailable
from gateway.webhooks.verification import (
    LagoPublicKeys,
    SignatureRejected,
    issuers_for,
    stripe_secrets,
    verify_lago_hmac,
    verify_lago_jwt,
    verify_stripe,
)
from tests.webhooks.conftest import lago_body, lago_hmac, lago_jwt, stripe_event, stripe_header


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeLago:
    """Serves a public key, counts fetches, can be down."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = key
        self.fetches = 0
        self.down = False

    async def __call__(self) -> rsa.RSAPublicKey:
        self.fetches += 1
        if self.down:
            raise UpstreamUnavailable("down")
        return self.key.public_key()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stripe_secret_setting_is_a_comma_separated_list() -> None:
    assert stripe_secrets(" whsec_a , whsec_b,,") == ["whsec_a", "whsec_b"]
    assert stripe_secrets("") == []


def test_no_stripe_secret_refuses_everything() -> None:
    body = stripe_event()
    with pytest.raises(SignatureRejected) as refused:
        verify_stripe(body, stripe_header(body), [])
    assert refused.value.code == "webhook_secret_not_configured"


def test_lago_hmac_is_over_the_raw_bytes_not_reserialised_json() -> None:
    body = lago_body()
    verify_lago_hmac(body, lago_hmac(body), "3f1a5e8e-lago-org-hmac-key")
    spaced = body.replace(b'","', b'", "')
    with pytest.raises(SignatureRejected):
        verify_lago_hmac(spaced, lago_hmac(body), "3f1a5e8e-lago-org-hmac-key")


def test_issuer_is_accepted_with_or_without_a_trailing_slash() -> None:
    assert issuers_for("http://lago:3000/") == ["http://lago:3000", "http://lago:3000/"]


async def test_refetch_is_rate_limited_while_forgeries_keep_coming() -> None:
    lago_key, attacker = _key(), _key()
    lago, clock = FakeLago(lago_key), Clock()
    keys = LagoPublicKeys(lago, refetch_interval=30.0, clock=clock)
    body = lago_body()

    for _ in range(5):
        with pytest.raises(SignatureRejected):
            await verify_lago_jwt(body, lago_jwt(body, attacker), keys, ["http://lago.test"])
    assert lago.fetches == 2  # the first fetch, one refetch

    clock.now += 31
    with pytest.raises(SignatureRejected):
        await verify_lago_jwt(body, lago_jwt(body, attacker), keys, ["http://lago.test"])
    assert lago.fetches == 3
    await verify_lago_jwt(body, lago_jwt(body, lago_key), keys, ["http://lago.test"])
    assert lago.fetches == 3


async def test_concurrent_failures_share_one_refetch() -> None:
    old, new = _key(), _key()
    lago = FakeLago(old)
    keys = LagoPublicKeys(lago)
    body = lago_body()
    await verify_lago_jwt(body, lago_jwt(body, old), keys, ["http://lago.test"])
    lago.key = new

    await asyncio.gather(
        *(verify_lago_jwt(body, lago_jwt(body, new), keys, ["http://lago.test"]) for _ in range(10))
    )

    assert lago.fetches == 2


async def test_lago_down_pauses_key_fetches() -> None:
    lago, clock = FakeLago(_key()), Clock()
    lago.down = True
    keys = LagoPublicKeys(lago, failure_pause=5.0, clock=clock)
    body = lago_body()

    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await verify_lago_jwt(body, lago_jwt(body, lago.key), keys, ["http://lago.test"])

    assert lago.fetches == 1
    lago.down = False
    clock.now += 6
    await verify_lago_jwt(body, lago_jwt(body, lago.key), keys, ["http://lago.test"])
    assert lago.fetches == 2
