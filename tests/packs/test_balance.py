from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from gateway.meters.service import terms_of
from gateway.packs import balance, reconciler, snapshot
from gateway.packs.account import refresh_account
from tests.conftest import Gateway
from tests.packs.conftest import pay, rows, subscribe


async def _events(
    gw: Gateway, customer: str, code: str, count: int, start: int = 0, **properties: Any
) -> None:
    """Usage through the gateway (accepted into the outbox and the meters, not forwarded:
    workers are off, so Lago has none of it)."""
    now = int(time.time())
    events = [
        {
            "transaction_id": f"{customer}-{code}-{start + i}",
            "external_subscription_id": f"sub_{customer}",
            "code": code,
            "timestamp": now,
            "properties": properties,
        }
        for i in range(count)
    ]
    response = await gw.client.post(
        "/api/v1/events/batch", json={"events": events}, headers=await gw.headers("events:write")
    )
    assert response.status_code == 200, response.text


async def _balance(gw: Gateway, customer: str) -> Any:
    response = await gw.client.get(
        f"/gateway/customers/{customer}/balance", headers=await gw.headers("billing:read")
    )
    assert response.status_code == 200, response.text
    return response.json()["balance"]


async def test_balance_shows_plan_period_usage_against_allowances_tokens_and_costs(
    shop: Gateway,
) -> None:
    await subscribe(shop, "alice", "basic_monthly")
    await _events(shop, "alice", "photo_generation", 3, quality="hd")
    await _events(shop, "alice", "video_generation", 2, seconds=6)

    balance = await _balance(shop, "alice")

    assert balance["plan"] == {
        "code": "basic_monthly",
        "name": "Basic",
        "interval": "monthly",
        "in_catalog": True,
    }
    assert balance["subscription"] == {"external_id": "sub_alice", "status": "active"}
    assert balance["period"]["from"] < balance["period"]["to"]
    # Events still in the outbox count: the meters see every accepted event.
    assert balance["usage"]["photo_generation"] == {
        "units": 3,
        "held": 0,
        "included": 200,
        "remaining_included": 197,
        "beyond_included": "tokens",
        "tokens_per_unit": "5",
        "entitled": True,
        "can_generate": True,
        "breakdown": {"quality=hd": 3},
    }
    assert balance["usage"]["video_generation"] == {
        "units": 12,
        "held": 0,
        "included": 0,
        "remaining_included": 0,
        "beyond_included": "tokens",
        "tokens_per_unit": "3",
        "entitled": False,  # Basic has no video feature: a hold is 403
        "can_generate": False,
        "breakdown": {},
    }
    wallet = balance["wallet"]
    assert (wallet["settled_credits"], wallet["tokens_spent_this_period"]) == ("0", "36")
    assert wallet["available_tokens"] == "-36"
    assert balance["features"]["hd_photos"] == {"max_resolution": 2048}
    assert "video" not in balance["features"]
    assert balance["token_costs"]["photo"]["tokens"] == 5
    assert balance["token_costs"]["video"] == {
        "metric": "video_generation",
        "tokens": 15,
        "per_units": 5,
    }


async def test_paid_credits_and_the_bonus_stay_pending_until_the_credit_invoice_is_paid(
    shop: Gateway,
) -> None:
    await subscribe(shop, "bob", "free_monthly")
    bought = await shop.client.post(
        "/gateway/customers/bob/token-packs/medium", headers=await shop.headers("billing:write")
    )
    invoice_id = bought.json()["token_pack_purchase"]["lago_invoice_id"]

    before = (await _balance(shop, "bob"))["wallet"]
    await shop.runtime.lago.call(
        "PUT", f"/invoices/{invoice_id}", json={"invoice": {"payment_status": "succeeded"}}
    )
    # What Lago's wallet webhooks (or the meters' reconciliation) make the account do.
    await refresh_account(shop.runtime.database, shop.runtime.lago, shop.parts.catalog, "bob")
    paid = (await _balance(shop, "bob"))["wallet"]
    await reconciler.run_once(shop.runtime)
    await refresh_account(shop.runtime.database, shop.runtime.lago, shop.parts.catalog, "bob")
    after = (await _balance(shop, "bob"))["wallet"]

    assert (before["settled_credits"], before["pending_credits"]) == ("0.0", "199.8")
    assert before["pending_bonus_credits"] == "75.2"
    assert (paid["settled_credits"], paid["pending_credits"]) == ("199.8", "0")
    assert paid["pending_bonus_credits"] == "75.2"
    assert (after["settled_credits"], after["pending_bonus_credits"]) == ("275.0", "0")
    assert after["ongoing_credits"] == "275.0"
    assert after["available_tokens"] == "275"


async def test_beyond_the_free_allowance_only_tokens_allow_a_generation(shop: Gateway) -> None:
    await subscribe(shop, "carol", "free_monthly")
    await _events(shop, "carol", "photo_generation", 10, quality="sd")

    without_tokens = (await _balance(shop, "carol"))["usage"]["photo_generation"]
    await shop.client.post(
        "/gateway/customers/carol/token-packs/small", headers=await shop.headers("billing:write")
    )
    with_bonus_only = (await _balance(shop, "carol"))["usage"]["photo_generation"]

    assert (without_tokens["remaining_included"], without_tokens["can_generate"]) == (0, False)
    # Nothing of the Small pack is spendable until it is paid (not even its 0.2 bonus tokens).
    assert with_bonus_only["can_generate"] is False


async def test_premium_video_is_billed_so_it_never_waits_for_tokens(shop: Gateway) -> None:
    await subscribe(shop, "dan", "premium_monthly")
    await _events(shop, "dan", "photo_generation", 50)

    usage = (await _balance(shop, "dan"))["usage"]

    assert usage["photo_generation"]["included"] is None
    assert usage["photo_generation"]["can_generate"] is True
    assert usage["video_generation"]["beyond_included"] == "invoice"
    assert usage["video_generation"]["can_generate"] is True


async def test_a_customer_without_a_subscription_generates_from_tokens_only(shop: Gateway) -> None:
    await shop.runtime.lago.call("POST", "/customers", json={"customer": {"external_id": "erin"}})

    balance = await _balance(shop, "erin")

    assert (balance["plan"], balance["period"], balance["subscription"]) == (None, None, None)
    assert balance["usage"]["photo_generation"]["can_generate"] is False
    assert balance["wallet"]["lago_id"] is None


async def test_balance_of_an_unknown_customer_is_404(shop: Gateway) -> None:
    response = await shop.client.get(
        "/gateway/customers/nobody/balance", headers=await shop.headers("billing:read")
    )

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


# The one-statement read (packs/snapshot.py) against the general path -------------------


def _general(gw: Gateway, customer: str, sub: str | None = None) -> Any:
    runtime, parts = gw.runtime, gw.parts
    return balance.customer_balance(
        runtime.database, runtime.lago, parts.meters, parts.catalog, customer, sub
    )


def _snapshot(gw: Gateway, customer: str, sub: str | None = None) -> Any:
    return snapshot.customer_balance(gw.parts.meters, gw.parts.catalog, customer, sub)


def _no_general_path(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """From now on the general path fails the test; the calls it got (none, if all is well)."""
    calls: list[tuple[Any, ...]] = []

    async def refuse(*args: Any) -> Any:
        calls.append(args)
        raise AssertionError("fell back to balance.customer_balance")

    monkeypatch.setattr(balance, "customer_balance", refuse)
    return calls


def _spy_meters_at(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    calls: list[tuple[str, float]] = []
    real = snapshot.meters_at

    async def spy(conn: Any, subscription: str, period_start: float) -> Any:
        calls.append((subscription, period_start))
        return await real(conn, subscription, period_start)

    monkeypatch.setattr(snapshot, "meters_at", spy)
    return calls


async def _busy_customer(gw: Gateway, customer: str) -> None:
    """A free plan's subscription with usage over two filters beyond its allowance (10
    photos), a paid pack, a hold paid from its tokens (held units and tokens), and the pack's
    bonus still owed."""
    await subscribe(gw, customer, "free_monthly")
    bought = await gw.client.post(
        f"/gateway/customers/{customer}/token-packs/medium",
        headers=await gw.headers("billing:write"),
    )
    assert bought.status_code == 201, bought.text
    await pay(gw, bought.json()["token_pack_purchase"]["lago_invoice_id"])
    await refresh_account(gw.runtime.database, gw.runtime.lago, gw.parts.catalog, customer)
    await _events(gw, customer, "photo_generation", 5, quality="hd")
    await _events(gw, customer, "photo_generation", 4, start=5, quality="sd")
    await _events(gw, customer, "video_generation", 2, seconds=6)
    headers = await gw.headers("events:write")
    for n, paid_from in enumerate(["allowance", "tokens"]):
        body = {
            "external_subscription_id": f"sub_{customer}",
            "code": "photo_generation",
            "transaction_id": f"{customer}-hold-{n}",
            "properties": {"quality": "sd"},
        }
        held = await gw.client.post("/gateway/holds", json={"hold": body}, headers=headers)
        assert held.status_code == 201, held.text
        assert held.json()["hold"]["paid_from"] == paid_from


def _assert_busy(answer: dict[str, Any], customer: str) -> None:
    """What ``_busy_customer`` made: so that comparing two answers compares something."""
    photo, video = answer["usage"]["photo_generation"], answer["usage"]["video_generation"]
    assert (photo["units"], photo["held"]) == (9, 1)
    assert photo["breakdown"] == {"quality=hd": 5, "quality=sd": 4}
    assert video["units"] == 12
    wallet = answer["wallet"]
    assert wallet["settled_credits"] == "199.8"
    assert wallet["pending_bonus_credits"] == "75.2"
    assert wallet["held_tokens"] == "5"
    assert wallet["read_at"] is not None
    assert answer["subscription"] == {"external_id": f"sub_{customer}", "status": "active"}


async def test_the_one_statement_read_answers_what_the_general_path_answers(
    shop: Gateway, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _busy_customer(shop, "ann")
    general = await _general(shop, "ann")
    named = await _general(shop, "ann", "sub_ann")
    _assert_busy(general, "ann")
    assert named == general
    served = await _balance(shop, "ann")
    assert served == general

    calls = _no_general_path(monkeypatch)
    meters_at = _spy_meters_at(monkeypatch)
    if backend == "sqlite":
        # No direct pool on SQLite: the general path answers.
        with pytest.raises(AssertionError, match="fell back"):
            await _snapshot(shop, "ann")
        assert len(calls) == 1
        return
    assert await _snapshot(shop, "ann") == general
    assert await _snapshot(shop, "ann", "sub_ann") == general
    assert await _balance(shop, "ann") == general
    # Served from the statement alone: the stored period is the current one.
    assert (calls, meters_at) == ([], [])


async def test_the_http_balance_is_served_by_the_door(
    shop: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    await subscribe(shop, "gus", "basic_monthly")
    await _events(shop, "gus", "photo_generation", 2, quality="hd")
    expected = await _general(shop, "gus")
    headers = await shop.headers("billing:read")

    async def no_framework(*_: Any) -> None:
        raise AssertionError("reached FastAPI")

    monkeypatch.setattr(shop.app, "framework", no_framework)
    answer = await shop.client.get("/gateway/customers/gus/balance", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"balance": expected}
    assert answer.json()["balance"]["usage"]["photo_generation"]["units"] == 2
    named = await shop.client.get(
        "/gateway/customers/gus/balance?external_subscription_id=sub_gus", headers=headers
    )
    assert named.json() == {"balance": expected}
    refused = await shop.client.get(
        "/gateway/customers/gus/balance", headers=await shop.headers("events:write")
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "missing_scope")


async def _framework_answer(gw: Gateway, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    """``GET url`` answered by FastAPI's route, past the door's fast routes."""
    path, _, query = url.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("gateway.test", 80),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
    }
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    app: Any = gw.app
    await app.framework(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body)


@pytest.mark.parametrize("length", [255, 256])
async def test_an_external_subscription_id_over_255_characters_is_422(
    shop: Gateway, monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    await subscribe(shop, "hal", "basic_monthly")
    headers = await shop.headers("billing:read")
    asked: list[str | None] = []
    real = snapshot.customer_balance

    async def spy(meters: Any, catalog: Any, customer: str, sub: str | None = None) -> Any:
        asked.append(sub)
        return await real(meters, catalog, customer, sub)

    monkeypatch.setattr(snapshot, "customer_balance", spy)
    path = f"/gateway/customers/hal/balance?external_subscription_id={'s' * length}"
    response = await shop.client.get(path, headers=headers)
    if length == 256:
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_errors"
        assert list(response.json()["error_details"]) == ["external_subscription_id"]
        assert asked == []  # refused before anything is read
        # As FastAPI's route of the same path answers it.
        assert await _framework_answer(shop, path, headers) == (422, response.json())
    else:
        # As long as the column: read, and not this customer's (Lago has no such one).
        assert response.status_code == 404, response.text
        assert asked == ["s" * 255]


async def _fell_back(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The general path stubbed: it records its calls and answers a marker."""
    calls: list[tuple[Any, ...]] = []

    async def general(*args: Any) -> Any:
        calls.append(args[4:])
        return {"general": True}

    monkeypatch.setattr(balance, "customer_balance", general)
    return calls


async def test_what_the_statement_cannot_answer_goes_to_the_general_path(
    shop: Gateway, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await subscribe(shop, "ivy", "basic_monthly")
    await subscribe(shop, "jon", "basic_monthly")
    await _general(shop, "ivy")  # reads the wallet into ivy's account
    await _general(shop, "jon")
    # A second active subscription for jon.
    second = {"external_customer_id": "jon", "plan_code": "premium_monthly",
              "external_id": "sub_jon_2"}  # fmt: skip
    created = await shop.client.post(
        "/api/v1/subscriptions",
        json={"subscription": second},
        headers=await shop.headers("billing:write"),
    )
    assert created.status_code == 200, created.text
    calls = await _fell_back(shop, monkeypatch)
    if backend == "sqlite":  # no direct pool: the general path answers everything
        assert await _snapshot(shop, "ivy") == {"general": True}
        assert calls == [("ivy", None)]
        return

    answer = await _snapshot(shop, "ivy")
    assert answer["subscription"] == {"external_id": "sub_ivy", "status": "active"}
    assert calls == []  # the known customer is answered by the statement
    fallbacks: list[tuple[str, str | None]] = [
        ("nobody", None),  # no stored terms
        ("ivy", "sub_jon"),  # another customer's subscription
        ("ivy", "sub_unknown"),
        ("ivy", " "),  # blank: the general path refuses it
        ("jon", None),  # several active subscriptions
    ]
    for customer, sub in fallbacks:
        assert await _snapshot(shop, customer, sub) == {"general": True}, (customer, sub)
    assert calls == fallbacks
    # Either of jon's subscriptions named: the statement answers.
    assert (await _snapshot(shop, "jon", "sub_jon_2"))["plan"]["code"] == "premium_monthly"
    assert len(calls) == len(fallbacks)

    # The wallet never read, then no account at all.
    async with shop.runtime.database.engine.begin() as conn:
        await conn.execute(text("UPDATE meter_accounts SET wallet_read_at = NULL"))
    assert await _snapshot(shop, "ivy") == {"general": True}
    async with shop.runtime.database.engine.begin() as conn:
        await conn.execute(text("DELETE FROM meter_accounts"))
    assert await _snapshot(shop, "ivy") == {"general": True}
    assert calls[len(fallbacks) :] == [("ivy", None), ("ivy", None)]


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_before(start: float) -> float:
    at = datetime.fromtimestamp(start, UTC)
    year, month = (at.year - 1, 12) if at.month == 1 else (at.year, at.month - 1)
    return at.replace(year=year, month=month, day=min(at.day, 28)).timestamp()


async def test_a_stale_stored_period_reads_the_current_periods_meters(
    shop: Gateway, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _busy_customer(shop, "ann")
    current = await _general(shop, "ann")
    _assert_busy(current, "ann")
    [(start, end)] = await rows(
        shop,
        "SELECT period_start, period_end FROM meter_subscriptions WHERE external_id = 'sub_ann'",
    )
    # The stored period is the current one (the statement alone would answer).
    assert [_stamp(start), _stamp(end)] == [current["period"]["from"], current["period"]["to"]]
    last = _month_before(start)
    async with shop.runtime.database.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE meter_subscriptions SET period_start = :s, period_end = :e "
                "WHERE external_id = 'sub_ann'"
            ),
            # A period before the current one (which the terms compute: it began at ``start``).
            {"s": last, "e": start},
        )
        # Last month's meters, which the stored (stale) period would wrongly point at.
        await conn.execute(
            text(
                "INSERT INTO usage_meters (external_subscription_id, metric, period_start, "
                "group_key, shard, aggregation, units, events, latest_at, held, updated_at) "
                "SELECT external_subscription_id, metric, :last, group_key, shard, "
                "aggregation, units + 100, events, latest_at, held, updated_at "
                "FROM usage_meters WHERE external_subscription_id = 'sub_ann'"
            ),
            {"last": last},
        )
    shop.parts.meters.forget("sub_ann")
    assert await _general(shop, "ann") == current

    calls = _no_general_path(monkeypatch)
    meters_at = _spy_meters_at(monkeypatch)
    if backend == "sqlite":
        with pytest.raises(AssertionError, match="fell back"):
            await _snapshot(shop, "ann")
        return
    assert await _snapshot(shop, "ann") == current
    assert await _snapshot(shop, "ann", "sub_ann") == current
    assert calls == []
    assert meters_at == [("sub_ann", start), ("sub_ann", start)]


def test_can_generate_is_false_for_a_metric_the_plan_does_not_entitle(shop: Gateway) -> None:
    """Plenty of tokens pay for a Basic video beyond its allowance, yet Basic lacks the
    video feature: a hold would be 403, so the hint says no; an override that adds it says
    yes."""
    catalog = shop.parts.catalog
    assert catalog is not None
    now = time.time()
    row = {"external_id": "sub_x", "external_customer_id": "x", "plan_code": "basic_monthly",
           "status": "active", "interval": "monthly", "billing_time": "calendar",
           "bill_charges_monthly": 0, "timezone": "UTC", "subscription_at": now - 86_400,
           "started_at": now - 86_400, "ending_at": None, "period_start": now - 3_600,
           "period_end": now + 3_600, "entitlements": None, "learned_at": now}  # fmt: skip
    account = {"credits": "1000", "held_tokens": "0", "wallet_read_at": now}

    def usage(entitlements: Any) -> dict[str, Any]:
        terms = terms_of({**row, "entitlements": entitlements})
        period = terms.period_of(now)
        found = balance.compose(catalog, "x", terms, period, account, [], [])
        return dict(found["usage"]["video_generation"])

    plain = usage(None)
    assert (plain["entitled"], plain["can_generate"]) == (False, False)
    added = [{"code": "video", "privileges": [{"code": "max_clip_seconds", "value": 15}]},
             {"code": "hd_photos", "privileges": [{"code": "max_resolution", "value": 2048}]},
             {"code": "badge", "privileges": [{"code": "tier", "value": "basic"}]}]  # fmt: skip
    overridden = usage(orjson.dumps(added).decode())
    assert (overridden["entitled"], overridden["can_generate"]) == (True, True)
