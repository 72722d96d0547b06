"""The verification pieces on their own: no database, no HTTP."""

from __future__ import annotations

import asyncio
import hmac

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
from tests.webhooks.conftest import (
    HMAC_KEY,
    STRIPE_SECRET,
    lago_body,
    lago_hmac,
    lago_jwt,
    stripe_event,
    stripe_header,
)


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


STRIPE_AT = 1_700_000_000


def _other(char: str) -> str:
    """A character that differs from ``char`` and is valid in both base64 and hex."""
    return "b" if char != "b" else "c"


def _forgeries(signature: str) -> dict[str, str]:
    """Near misses of a correct signature: right for a prefix, cut short, or extended."""
    last = len(signature) - 1
    return {
        "right_in_first_8": signature[:8] + _other(signature[8]) + signature[9:],
        f"right_in_first_{last}": signature[:last] + _other(signature[last]),
        "truncated": signature[:-1],
        "truncated_to_8": signature[:8],
        "extended": signature + "A",
    }


def _lago_forgeries() -> list[tuple[str, str]]:
    return list(_forgeries(lago_hmac(lago_body())).items())


def _stripe_forgeries() -> list[tuple[str, str]]:
    signature = stripe_header(stripe_event(), at=STRIPE_AT).split("v1=")[1]
    return list(_forgeries(signature).items())


def _verify_stripe_v1(signature: str) -> None:
    body = stripe_event()
    verify_stripe(body, f"t={STRIPE_AT},v1={signature}", [STRIPE_SECRET], tolerance=10**10)


def _compare_first_8(a: bytes | str, b: bytes | str) -> bool:
    """The defect the refusal tests guard against: only a prefix compared."""
    return a[:8] == b[:8]


def test_a_lago_hmac_is_base64_of_44_characters() -> None:
    assert len(lago_hmac(lago_body())) == 44  # so "first 43 right" is the last character wrong


@pytest.mark.parametrize(("kind", "forged"), _lago_forgeries())
def test_a_lago_hmac_right_only_in_part_is_refused(kind: str, forged: str) -> None:
    body = lago_body()
    verify_lago_hmac(body, lago_hmac(body), HMAC_KEY)
    with pytest.raises(SignatureRejected) as refused:
        verify_lago_hmac(body, forged, HMAC_KEY)
    assert refused.value.code == "invalid_signature"


@pytest.mark.parametrize(("kind", "forged"), _stripe_forgeries())
def test_a_stripe_v1_signature_right_only_in_part_is_refused(kind: str, forged: str) -> None:
    _verify_stripe_v1(stripe_header(stripe_event(), at=STRIPE_AT).split("v1=")[1])
    with pytest.raises(SignatureRejected) as refused:
        _verify_stripe_v1(forged)
    assert refused.value.code == "invalid_signature"


def test_the_partial_signature_tests_fail_on_a_prefix_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a comparator that looks at 8 characters only, every forgery above is accepted:
    the refusal tests can fail, and would, on that defect (Lago's check and Stripe's library
    both compare through ``hmac.compare_digest``)."""
    monkeypatch.setattr(hmac, "compare_digest", _compare_first_8)
    body = lago_body()
    for _, forged in _lago_forgeries():
        verify_lago_hmac(body, forged, HMAC_KEY)
    for _, forged in _stripe_forgeries():
        _verify_stripe_v1(forged)
