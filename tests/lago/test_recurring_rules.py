"""Wallets' recurring transaction rules in the emulator, ported from lago-api's specs:
``spec/support/shared_examples/wallet_actions.rb`` (the wallet endpoints' "with recurring
transaction rules" contexts), ``spec/services/wallets/recurring_transaction_rules/*``,
``spec/services/wallets/validate_recurring_transaction_rules_service_spec.rb``,
``spec/services/wallets/create_interval_wallet_transactions_service_spec.rb`` and
``spec/jobs/clock/terminate_recurring_transaction_rules_job_spec.rb``. Not ported: invoice
custom sections, payment methods, paid top-up limits, freemium (the emulator is premium).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lago.emulator import EmulatorState, create_app
from lago.emulator.contract import load_spec
from lago.emulator.recurring_rules import run_clock, terminate_expired

pytestmark = pytest.mark.asyncio
API_KEY = "test-lago-key"
CREATED = datetime(2021, 2, 20, tzinfo=UTC)  # a Saturday


@pytest_asyncio.fixture
async def client(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator, every exchange checked against Lago's OpenAPI spec when it is present."""
    app = create_app(state, api_key=API_KEY, validate=load_spec() is not None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://lago.test/api/v1",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as lago:
        yield lago
    assert state.contract_violations == []


def at(state: EmulatorState, moment: datetime) -> None:
    state.clock = lambda: moment


async def make_wallet(
    lago: httpx.AsyncClient,
    rules: list[dict[str, Any]] | None = None,
    timezone: str | None = None,
    **fields: Any,
) -> httpx.Response:
    customer: dict[str, Any] = {"external_id": "acme", "currency": "EUR"}
    if timezone:
        customer["timezone"] = timezone
    await lago.post("/customers", json={"customer": customer})
    wallet = {"external_customer_id": "acme", "rate_amount": "1", "currency": "EUR", **fields}
    if rules is not None:
        wallet["recurring_transaction_rules"] = rules
    return await lago.post("/wallets", json={"wallet": wallet})


async def created_rule(lago: httpx.AsyncClient, rule: dict[str, Any], **fields: Any) -> Any:
    response = await make_wallet(lago, [rule], **fields)
    assert response.status_code == 200, response.text
    rules = response.json()["wallet"]["recurring_transaction_rules"]
    assert len(rules) == 1
    return rules[0]


async def put_rules(lago: httpx.AsyncClient, wallet_id: str, rules: Any) -> httpx.Response:
    body = {"wallet": {"name": "wallet1", "recurring_transaction_rules": rules}}
    return await lago.put(f"/wallets/{wallet_id}", json=body)


def errors(response: httpx.Response) -> Any:
    assert response.status_code == 422, response.text
    return response.json()["error_details"]


MONTHLY = {"trigger": "interval", "interval": "monthly"}


# --- creating with the wallet (wallet_actions.rb, create_service_spec.rb) ----------------


async def test_create_with_a_rule_inherits_the_wallets_credits(
    client: httpx.AsyncClient,
) -> None:
    """wallet_actions.rb: create, "with recurring transaction rules", it "returns a success";
    create_service_spec.rb: "when paid and granted credits are omitted for rule"."""
    rule = await created_rule(
        client,
        {**MONTHLY, "ignore_paid_top_up_limits": True, "purchase_order_number": "PO-RULE-123"},
        paid_credits="10",
        granted_credits="10",
    )
    assert rule["interval"] == "monthly"
    assert (rule["paid_credits"], rule["granted_credits"]) == ("10.0", "10.0")
    assert (rule["method"], rule["trigger"], rule["status"]) == ("fixed", "interval", "active")
    assert rule["ignore_paid_top_up_limits"] is True
    assert rule["purchase_order_number"] == "PO-RULE-123"
    assert rule["grants_target_top_up"] is False
    assert rule["threshold_credits"] == "0.0"
    assert rule["target_ongoing_balance"] is None
    assert rule["payment_method"] == {"payment_method_type": "provider"}


async def test_grants_target_top_up_on_a_target_rule(client: httpx.AsyncClient) -> None:
    """wallet_actions.rb: "when grants_target_top_up is true on a target rule"."""
    rule = await created_rule(
        client,
        {**MONTHLY, "method": "target", "target_ongoing_balance": "200",
         "grants_target_top_up": True},
    )  # fmt: skip
    assert (rule["method"], rule["grants_target_top_up"]) == ("target", True)
    assert rule["target_ongoing_balance"] == "200.0"


async def test_grants_target_top_up_on_a_fixed_rule_is_invalid(client: httpx.AsyncClient) -> None:
    """wallet_actions.rb: "when grants_target_top_up is true on a fixed rule"."""
    response = await make_wallet(
        client, [{**MONTHLY, "method": "fixed", "grants_target_top_up": True}]
    )
    assert errors(response) == {"recurring_transaction_rules": ["invalid_recurring_rule"]}


@pytest.mark.parametrize(
    ("wallet_flag", "rule_flag", "expected"), [(True, None, True), (None, True, True)]
)
async def test_invoice_requires_successful_payment(
    client: httpx.AsyncClient, wallet_flag: bool | None, rule_flag: bool | None, expected: bool
) -> None:
    """wallet_actions.rb: "when invoice_requires_successful_payment is set at the wallet level
    but the rule level" and "...at the rule level but not present at the wallet level"."""
    rule: dict[str, Any] = dict(MONTHLY)
    fields: dict[str, Any] = {}
    if rule_flag is not None:
        rule["invoice_requires_successful_payment"] = rule_flag
    if wallet_flag is not None:
        fields["invoice_requires_successful_payment"] = wallet_flag
    created = await created_rule(client, rule, **fields)
    assert created["invoice_requires_successful_payment"] is expected


async def test_expiration_metadata_and_name(client: httpx.AsyncClient) -> None:
    """wallet_actions.rb: "with expiration_at transaction rule", "with transaction metadata",
    "when transaction_name is set"."""
    expiration_at = "2099-01-01T00:00:00Z"
    metadata = [{"key": "valid_value", "value": "also_valid"}]
    rule = await created_rule(
        client,
        {**MONTHLY, "expiration_at": expiration_at, "transaction_metadata": metadata,
         "transaction_name": "Custom Wallet Top-up"},
    )  # fmt: skip
    assert rule["expiration_at"] == expiration_at
    assert rule["transaction_metadata"] == metadata
    assert rule["transaction_name"] == "Custom Wallet Top-up"


@pytest.mark.parametrize(
    "rule",
    [
        {"trigger": "interval", "interval": "daily"},  # validate_service_spec: invalid interval
        {"trigger": "threshold", "threshold_credits": "abc"},  # invalid threshold
        {**MONTHLY, "method": "target"},  # invalid method: no target_ongoing_balance
        {**MONTHLY, "paid_credits": "foo"},  # invalid credits
        {**MONTHLY, "transaction_metadata": {"key": "k", "value": "v"}},  # wallet_actions.rb
        {**MONTHLY, "expiration_at": "2000-01-01T00:00:00Z"},  # a past date
        {**MONTHLY, "expiration_at": "not a date"},  # an invalid format
        {
            "trigger": "threshold",
            "threshold_credits": "50",
            "method": "target",
            "target_ongoing_balance": "10",
        },  # target below threshold
    ],
)
async def test_validate_service_refusals(lago: httpx.AsyncClient, rule: dict[str, Any]) -> None:
    """validate_service_spec.rb: each "returns false" context is 422 invalid_recurring_rule
    (requests the OpenAPI spec does not allow, so sent unchecked)."""
    response = await make_wallet(lago, [rule])
    assert errors(response) == {"recurring_transaction_rules": ["invalid_recurring_rule"]}


async def test_two_rules_are_invalid_number_of_recurring_rules(
    client: httpx.AsyncClient,
) -> None:
    """validate_recurring_transaction_rules_service_spec.rb: "when there is wrong number of
    recurring transaction rules"."""
    response = await make_wallet(client, [MONTHLY, MONTHLY])
    assert errors(response) == {
        "recurring_transaction_rules": ["invalid_number_of_recurring_rules"]
    }


async def test_a_threshold_rule(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """validate_service_spec.rb "returns true" with a threshold trigger; its interval is
    ``null`` (CreateService passes ``rule_params[:interval]``)."""
    response = await make_wallet(
        lago, [{"trigger": "threshold", "threshold_credits": "20", "granted_credits": "5"}]
    )
    [rule] = response.json()["wallet"]["recurring_transaction_rules"]
    assert (rule["trigger"], rule["interval"], rule["threshold_credits"]) == (
        "threshold",
        None,
        "20.0",
    )


# --- updating (wallet_actions.rb update, update_service_spec.rb) ------------------------


async def test_update_an_existing_rule(client: httpx.AsyncClient) -> None:
    """wallet_actions.rb: update, "with recurring transaction rules", it "returns a success"."""
    response = await make_wallet(client, [MONTHLY])
    wallet = response.json()["wallet"]
    [rule] = wallet["recurring_transaction_rules"]
    payload = {
        "lago_id": rule["lago_id"], "method": "target", "trigger": "interval",
        "interval": "weekly", "paid_credits": "105", "granted_credits": "105",
        "target_ongoing_balance": "300", "invoice_requires_successful_payment": True,
        "ignore_paid_top_up_limits": True, "purchase_order_number": "PO-RULE-456",
    }  # fmt: skip
    answer = await put_rules(client, wallet["lago_id"], [payload])
    assert answer.status_code == 200, answer.text
    updated = answer.json()["wallet"]
    [got] = updated["recurring_transaction_rules"]
    assert updated["invoice_requires_successful_payment"] is False
    assert got["lago_id"] == rule["lago_id"]
    assert (got["interval"], got["method"], got["trigger"]) == ("weekly", "target", "interval")
    assert (got["paid_credits"], got["granted_credits"]) == ("105.0", "105.0")
    assert got["invoice_requires_successful_payment"] is True
    assert got["ignore_paid_top_up_limits"] is True
    assert got["purchase_order_number"] == "PO-RULE-456"
    # update_service_spec.rb: "when switching a fixed rule to target without specifying
    # grants_target_top_up" → false.
    assert got["grants_target_top_up"] is False


async def test_a_rule_without_id_replaces_the_existing_one(
    state: EmulatorState, client: httpx.AsyncClient
) -> None:
    """update_service_spec.rb: "with added rule without id", it "creates new recurring
    transaction rule and terminates existing"; wallet_actions.rb "when transaction metadata is
    set" (a new rule created with the wallet's invoice_requires_successful_payment)."""
    response = await make_wallet(client, [MONTHLY])
    wallet = response.json()["wallet"]
    [old] = wallet["recurring_transaction_rules"]
    metadata = [{"key": "update_key", "value": "update_value"}]
    answer = await client.put(
        f"/wallets/{wallet['lago_id']}",
        json={"wallet": {"invoice_requires_successful_payment": True,
                         "recurring_transaction_rules": [
                             {"trigger": "interval", "interval": "weekly",
                              "transaction_metadata": metadata}]}},
    )  # fmt: skip
    [new] = answer.json()["wallet"]["recurring_transaction_rules"]
    assert new["lago_id"] != old["lago_id"]
    assert new["transaction_metadata"] == metadata
    assert new["invoice_requires_successful_payment"] is True
    stored = state.wallets[wallet["lago_id"]]["recurring_transaction_rules"]
    assert [(r["lago_id"], r["status"]) for r in stored] == [
        (old["lago_id"], "terminated"),
        (new["lago_id"], "active"),
    ]
    assert stored[0]["terminated_at"] is not None


async def test_an_empty_array_terminates_every_rule(
    state: EmulatorState, client: httpx.AsyncClient
) -> None:
    """update_service_spec.rb: "when empty array is sent as argument"."""
    wallet = (await make_wallet(client, [MONTHLY])).json()["wallet"]
    answer = await put_rules(client, wallet["lago_id"], [])
    assert answer.json()["wallet"]["recurring_transaction_rules"] == []
    stored = state.wallets[wallet["lago_id"]]["recurring_transaction_rules"]
    assert [r["status"] for r in stored] == ["terminated"]


async def test_rules_absent_from_the_update_stay(client: httpx.AsyncClient) -> None:
    """Wallets::UpdateService: without ``recurring_transaction_rules`` the rules are kept."""
    wallet = (await make_wallet(client, [MONTHLY])).json()["wallet"]
    answer = await client.put(f"/wallets/{wallet['lago_id']}", json={"wallet": {"name": "x"}})
    assert len(answer.json()["wallet"]["recurring_transaction_rules"]) == 1


async def test_an_inactive_rule_is_not_updated(
    state: EmulatorState, client: httpx.AsyncClient
) -> None:
    """update_service_spec.rb: "when updating an inactive rule", it "does not update inactive
    rules and creates a new one"."""
    wallet = (await make_wallet(client, [MONTHLY])).json()["wallet"]
    [old] = wallet["recurring_transaction_rules"]
    await put_rules(client, wallet["lago_id"], [])
    answer = await put_rules(client, wallet["lago_id"], [{**MONTHLY, "lago_id": old["lago_id"]}])
    [new] = answer.json()["wallet"]["recurring_transaction_rules"]
    assert new["lago_id"] != old["lago_id"]


async def test_explicit_null_credits_become_zero(client: httpx.AsyncClient) -> None:
    """update_service_spec.rb: "when paid_credits and granted_credits are explicitly null"."""
    wallet = (await make_wallet(client, [{**MONTHLY, "paid_credits": "5"}])).json()["wallet"]
    [rule] = wallet["recurring_transaction_rules"]
    answer = await client.put(
        f"/wallets/{wallet['lago_id']}",
        json={"wallet": {"recurring_transaction_rules": [
            {**MONTHLY, "lago_id": rule["lago_id"], "paid_credits": None,
             "granted_credits": None}]}},
    )  # fmt: skip
    [got] = answer.json()["wallet"]["recurring_transaction_rules"]
    assert (got["paid_credits"], got["granted_credits"]) == ("0.0", "0.0")


async def test_update_refusals(lago: httpx.AsyncClient) -> None:
    """Wallets::UpdateService: two rules, an invalid rule, a terminated wallet."""
    client = lago
    wallet = (await make_wallet(client, [MONTHLY])).json()["wallet"]
    assert errors(await put_rules(client, wallet["lago_id"], [MONTHLY, MONTHLY])) == {
        "recurring_transaction_rules": ["invalid_number_of_recurring_rules"]
    }
    bad = [{"trigger": "interval", "interval": "hourly"}]
    assert errors(await put_rules(client, wallet["lago_id"], bad)) == {
        "recurring_transaction_rules": ["invalid_recurring_rule"]
    }
    await client.delete(f"/wallets/{wallet['lago_id']}")
    assert errors(await put_rules(client, wallet["lago_id"], [MONTHLY])) == {
        "wallet_id": ["wallet_is_terminated"]
    }


# --- the clock (create_interval_wallet_transactions_service_spec.rb) ---------------------


async def wallet_at(
    state: EmulatorState,
    lago: httpx.AsyncClient,
    rule: dict[str, Any],
    created: datetime = CREATED,
    timezone: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    at(state, created)
    response = await make_wallet(lago, [rule], timezone=timezone, **fields)
    assert response.status_code == 200, response.text
    wallet: dict[str, Any] = response.json()["wallet"]
    return wallet


def ran_at(state: EmulatorState, moment: datetime) -> list[dict[str, Any]]:
    at(state, moment)
    made: list[dict[str, Any]] = run_clock(state)["wallet_transactions"]
    return made


GRANT = {"trigger": "interval", "granted_credits": "10", "transaction_name": "Weekly grant"}


async def test_weekly_on_the_right_day_only(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when recurring transactions should be created weekly": "enqueues a job on correct day",
    "does not enqueue a job on other day"; granted credits settle at once."""
    wallet = await wallet_at(state, lago, {**GRANT, "interval": "weekly"})
    saturday = datetime(2022, 6, 18, 12, tzinfo=UTC)
    assert ran_at(state, saturday + timedelta(days=1)) == []
    [made] = ran_at(state, saturday)
    assert (made["transaction_status"], made["status"], made["source"]) == (
        "granted",
        "settled",
        "interval",
    )
    assert (made["credit_amount"], made["name"]) == ("10.0", "Weekly grant")
    assert state.wallets[wallet["lago_id"]]["credits_balance"] == "10.0"


async def test_once_a_day(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when wallet transactions had already been created that day": the hourly job tops up
    once."""
    await wallet_at(state, lago, {**GRANT, "interval": "weekly"})
    saturday = datetime(2022, 6, 18, 1, tzinfo=UTC)
    assert len(ran_at(state, saturday)) == 1
    assert ran_at(state, saturday + timedelta(hours=20)) == []


async def test_started_at_moves_the_anniversary(
    state: EmulatorState, lago: httpx.AsyncClient
) -> None:
    """ "when started_at is set on the transaction recurring rule": not one week after the
    creation date, but one week after started_at; nothing before started_at."""
    started = datetime(2022, 6, 20, tzinfo=UTC)  # a Monday
    rule = {**GRANT, "interval": "weekly", "started_at": "2022-06-20T00:00:00Z"}
    await wallet_at(state, lago, rule)
    assert ran_at(state, datetime(2022, 6, 18, 12, tzinfo=UTC)) == []  # creation weekday
    assert ran_at(state, started - timedelta(weeks=1)) == []  # before started_at
    assert len(ran_at(state, started + timedelta(weeks=1, hours=1))) == 1


async def test_monthly_from_a_31st(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when wallet is created on a 31st", it "enqueues a job if the month count less than 31
    days"; "does not enqueue a job on other day"."""
    created = datetime(2021, 3, 31, tzinfo=UTC)
    await wallet_at(state, lago, {**GRANT, "interval": "monthly"}, created)
    assert ran_at(state, datetime(2021, 4, 29, tzinfo=UTC)) == []
    assert len(ran_at(state, datetime(2021, 4, 30, tzinfo=UTC))) == 1


async def test_quarterly(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when recurring transactions should be created quarterly": the anniversary day every
    third month."""
    await wallet_at(state, lago, {**GRANT, "interval": "quarterly"})
    assert ran_at(state, datetime(2021, 3, 20, tzinfo=UTC)) == []
    assert len(ran_at(state, datetime(2021, 5, 20, tzinfo=UTC))) == 1
    assert len(ran_at(state, datetime(2022, 2, 20, tzinfo=UTC))) == 1


async def test_yearly_from_29_february(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when wallet is created on 29th of february", it "enqueues a job on 28th of february
    when year is not a leap year"."""
    await wallet_at(state, lago, {**GRANT, "interval": "yearly"}, datetime(2020, 2, 29, tzinfo=UTC))
    assert len(ran_at(state, datetime(2022, 2, 28, tzinfo=UTC))) == 1
    assert ran_at(state, datetime(2022, 3, 1, tzinfo=UTC)) == []


async def test_not_on_the_creation_day(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when on wallet creation day", also "with customer timezone" (Pacific/Noumea, +11)."""
    await wallet_at(state, lago, {**GRANT, "interval": "monthly"}, timezone="Pacific/Noumea")
    assert ran_at(state, CREATED + timedelta(hours=10)) == []


async def test_an_expired_rule(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when recurring transaction rule has expired"; terminate_recurring_transaction_rules_
    job_spec.rb "terminates expired recurring transaction rules"."""
    rule = {**GRANT, "interval": "weekly", "expiration_at": "2021-02-20T02:00:00Z"}
    wallet = await wallet_at(state, lago, rule)
    at(state, CREATED + timedelta(weeks=2))
    assert run_clock(state) == {
        "terminated_rule_ids": [wallet["recurring_transaction_rules"][0]["lago_id"]],
        "wallet_transactions": [],
    }
    assert terminate_expired(state) == []


async def test_target_rules(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when method is target", "when grants_target_top_up is true": the gap to the target as
    granted credits; "when both paid and granted credits are zero": nothing."""
    rule = {"trigger": "interval", "interval": "weekly", "method": "target",
            "target_ongoing_balance": "200", "grants_target_top_up": True}  # fmt: skip
    wallet = await wallet_at(state, lago, rule, granted_credits="50")
    [made] = ran_at(state, CREATED + timedelta(weeks=1))
    assert (made["transaction_status"], made["credit_amount"]) == ("granted", "150.0")
    assert state.wallets[wallet["lago_id"]]["credits_balance"] == "200.0"
    assert ran_at(state, CREATED + timedelta(weeks=2)) == []


async def test_a_paid_target_rule(state: EmulatorState, lago: httpx.AsyncClient) -> None:
    """ "when method is target", it "calls wallet transaction create job with expected params":
    the gap as paid credits (no paid top-up minimum in the emulator), pending until paid."""
    rule = {"trigger": "interval", "interval": "weekly", "method": "target",
            "target_ongoing_balance": "200"}  # fmt: skip
    await wallet_at(state, lago, rule, granted_credits="50")
    [made] = ran_at(state, CREATED + timedelta(weeks=1))
    assert (made["transaction_status"], made["status"]) == ("purchased", "pending")
    assert made["credit_amount"] == "150.0"


async def test_rule_metadata_and_purchase_order_number(
    state: EmulatorState, lago: httpx.AsyncClient
) -> None:
    """ "when rule have metadata", "when rule purchase_order_number is blank and wallet has
    purchase_order_number"."""
    metadata = [{"key": "plan", "value": "premium"}]
    rule = {**GRANT, "interval": "weekly", "transaction_metadata": metadata}
    await wallet_at(state, lago, rule, purchase_order_number="PO-W")
    [made] = ran_at(state, CREATED + timedelta(weeks=1))
    assert (made["metadata"], made["purchase_order_number"]) == (metadata, "PO-W")


async def test_a_threshold_rule_tops_up_at_or_below_it(
    state: EmulatorState, lago: httpx.AsyncClient
) -> None:
    """threshold_top_up_service.rb: a wallet at or below threshold_credits is topped up."""
    rule = {"trigger": "threshold", "threshold_credits": "5", "granted_credits": "20"}
    wallet = await wallet_at(state, lago, rule)
    [made] = ran_at(state, CREATED + timedelta(hours=1))
    assert (made["source"], made["credit_amount"]) == ("threshold", "20.0")
    assert ran_at(state, CREATED + timedelta(hours=2)) == []
    assert state.wallets[wallet["lago_id"]]["credits_balance"] == "20.0"


async def test_the_control_endpoint(state: EmulatorState) -> None:
    """POST /_emulator/clock/recurring_transaction_rules runs the clock at the emulator's now."""
    app = create_app(state, api_key=API_KEY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://lago.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as http:
        at(state, CREATED)
        lago = httpx.AsyncClient(
            transport=http._transport, base_url="http://lago.test/api/v1", headers=http.headers
        )
        await make_wallet(lago, [{**GRANT, "interval": "weekly"}])
        at(state, CREATED + timedelta(weeks=1))
        answer = (await http.post("/_emulator/clock/recurring_transaction_rules")).json()
    assert answer["now"] == "2021-02-27T00:00:00Z"
    assert [t["credit_amount"] for t in answer["wallet_transactions"]] == ["10.0"]
