"""Lago's entitlement request specs, ported to the emulator:
spec/requests/api/v1/features_controller_spec.rb, features/privileges_controller_spec.rb,
plans/entitlements_controller_spec.rb, plans/entitlements/privileges_controller_spec.rb,
subscriptions/entitlements_controller_spec.rb and
subscriptions/entitlements/privileges_controller_spec.rb.

Each test names the spec file and the ``describe``/``context``/``it`` it ports. Lago's specs
build rows with factories; here they are made through the API. Not ported: "only returns
features for the current organization" and "when feature belongs to another organization"
(one organization), "when plan has children (subscription plan overrides)" (no plan
overrides), and the row-count expectations, which read the state instead.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lago.emulator import EmulatorState

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("catalog")]


async def make_feature(lago: httpx.AsyncClient, code: str, **fields: Any) -> dict[str, Any]:
    response = await lago.post("/features", json={"feature": {"code": code, **fields}})
    assert response.status_code == 200, response.text
    feature: dict[str, Any] = response.json()["feature"]
    return feature


async def seats(lago: httpx.AsyncClient) -> None:
    """The specs' ``feature1`` with ``privilege1`` and ``privilege2``, and ``feature2``."""
    await make_feature(
        lago,
        "seats",
        name="Number of seats",
        description="Number of users of the account",
        privileges=[
            {"code": "max_admins", "name": "", "value_type": "integer"},
            {"code": "max", "name": "Maximum", "value_type": "integer"},
        ],
    )
    await make_feature(lago, "storage", name="Storage", description="Storage space")


def by_code(privileges: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["code"]: p for p in privileges}


# -- features_controller_spec.rb -------------------------------------------------------------

NEW_FEATURE = {
    "code": "new_feature",
    "name": "New Feature",
    "description": "A new feature",
    "privileges": [
        {"code": "priv1", "value_type": "string"},
        {"code": "priv2", "name": "Maximum", "value_type": "integer"},
        {"code": "priv3", "value_type": "boolean"},
        {
            "code": "priv4",
            "name": "SELECT",
            "value_type": "select",
            "config": {"select_options": ["a", "b", "c"]},
        },
    ],
}


async def test_creates_a_feature_with_privileges(lago: httpx.AsyncClient) -> None:
    """features_controller_spec.rb: POST /api/v1/features, it "creates a new feature with
    privileges"."""
    response = await lago.post("/features", json={"feature": NEW_FEATURE})

    assert response.status_code == 200
    feature = response.json()["feature"]
    assert (feature["code"], feature["name"], feature["description"]) == (
        "new_feature",
        "New Feature",
        "A new feature",
    )
    assert feature["privileges"] == [
        {"code": "priv1", "name": None, "value_type": "string", "config": {}},
        {"code": "priv2", "name": "Maximum", "value_type": "integer", "config": {}},
        {"code": "priv3", "name": None, "value_type": "boolean", "config": {}},
        {
            "code": "priv4",
            "name": "SELECT",
            "value_type": "select",
            "config": {"select_options": ["a", "b", "c"]},
        },
    ]


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"code": "seats"}, {"code": ["value_already_exist"]}),
        ({}, {"code": ["value_is_mandatory"]}),
        ({"code": ""}, {"code": ["value_is_mandatory"]}),
        (
            {"code": "new_feature", "privileges": [{"code": "max_admins", "value_type": "x"}]},
            {"privilege.value_type": ["value_is_invalid"]},
        ),
        (
            {"code": "test", "privileges": [{"code": " "}]},
            {"privilege.code": ["value_is_mandatory"]},
        ),
    ],
    ids=[
        "when feature code already exists",
        "when feature code is missing",
        "when feature code is empty string",
        "when privilege value_type is invalid",
        "when privilege code is empty string",
    ],
)
async def test_create_validation_errors(
    lago: httpx.AsyncClient, state: EmulatorState, fields: dict[str, Any], details: Any
) -> None:
    """features_controller_spec.rb: POST, the contexts named by the ids, it "returns
    validation error"; nothing is created."""
    await seats(lago)
    fields = {"name": "New Feature", "description": "A new feature", **fields}

    response = await lago.post("/features", json={"feature": fields})

    assert response.status_code == 422
    assert response.json()["code"] == "validation_errors"
    assert response.json()["error_details"] == details
    assert sorted(state.features) == ["seats", "storage"]


async def test_duplicated_privilege_codes_and_select_config(lago: httpx.AsyncClient) -> None:
    """FeatureCreateService: a privilege code twice is ``privilege.code``
    ``value_is_duplicated``; Privilege#config_valid?: a select needs ``select_options``."""
    twice = [{"code": "a"}, {"code": "a"}]
    response = await lago.post("/features", json={"feature": {"code": "x", "privileges": twice}})
    assert response.json()["error_details"] == {"privilege.code": ["value_is_duplicated"]}

    select = [{"code": "a", "value_type": "select"}]
    response = await lago.post("/features", json={"feature": {"code": "x", "privileges": select}})
    assert response.json()["error_details"] == {"privilege.config": ["invalid_format"]}


async def test_creates_a_feature_without_privileges(lago: httpx.AsyncClient) -> None:
    """features_controller_spec.rb: POST, context "when feature has no privileges", it
    "creates a feature without privileges"; and "when feature name and description are
    optional"."""
    feature = await make_feature(lago, "new_feature")

    assert feature["privileges"] == []
    assert feature["name"] is None
    assert feature["description"] is None


async def test_lists_features_paginated_and_searched(lago: httpx.AsyncClient) -> None:
    """features_controller_spec.rb: GET /api/v1/features, it "returns a paginated list of
    features", "includes pagination metadata", context "with pagination" and "with
    search_term"."""
    await seats(lago)

    listed = (await lago.get("/features")).json()
    assert len(listed["features"]) == 2
    seat = next(f for f in listed["features"] if f["code"] == "seats")
    assert seat["privileges"] == [
        {"code": "max_admins", "name": "", "value_type": "integer", "config": {}},
        {"code": "max", "name": "Maximum", "value_type": "integer", "config": {}},
    ]
    page = (await lago.get("/features", params={"page": 1, "per_page": 1})).json()
    assert len(page["features"]) == 1
    assert page["meta"]["current_page"] == 1
    assert page["meta"]["total_pages"] == 2
    assert page["meta"]["total_count"] == 2
    searched = (await lago.get("/features", params={"search_term": "sto"})).json()
    assert [f["code"] for f in searched["features"]] == ["storage"]


async def test_retrieves_a_feature(lago: httpx.AsyncClient) -> None:
    """features_controller_spec.rb: GET /api/v1/features/:code, it "returns a feature", context
    "when feature does not exist" and "when feature is deleted"."""
    await seats(lago)

    feature = (await lago.get("/features/seats")).json()["feature"]
    assert feature["name"] == "Number of seats"
    assert [p["code"] for p in feature["privileges"]] == ["max_admins", "max"]
    missing = await lago.get("/features/non_existent")
    assert missing.status_code == 404
    assert missing.json()["code"] == "feature_not_found"
    await lago.delete("/features/seats")
    assert (await lago.get("/features/seats")).json()["code"] == "feature_not_found"


async def test_updates_feature_and_privileges(lago: httpx.AsyncClient) -> None:
    """features_controller_spec.rb: PATCH /api/v1/features/:code, it "updates the feature and
    privilege attributes" and "creates privilege non existent privilege"."""
    await seats(lago)
    params = {
        "name": "Updated Feature Name",
        "description": "Updated feature description",
        "privileges": [{"code": "max", "name": "Max."}, {"code": "nonexistent", "name": "New"}],
    }

    response = await lago.patch("/features/seats", json={"feature": params})

    assert response.status_code == 200
    feature = response.json()["feature"]
    assert feature["name"] == "Updated Feature Name"
    assert feature["description"] == "Updated feature description"
    privileges = by_code(feature["privileges"])
    assert privileges["max"]["name"] == "Max."
    assert privileges["max_admins"]["name"] == ""
    assert privileges["nonexistent"] == {
        "code": "nonexistent",
        "name": "New",
        "value_type": "string",
        "config": {},
    }


async def test_update_changes_only_what_is_given(lago: httpx.AsyncClient) -> None:
    """features_controller_spec.rb: PATCH, it "only updates provided attributes", contexts
    "when updating only feature attributes", "when updating only privilege names", "when
    privilege name is empty", "when feature name is empty"."""
    await seats(lago)

    only_description = {"description": "Updated"}
    feature = (await lago.put("/features/seats", json={"feature": only_description})).json()
    assert feature["feature"]["name"] == "Number of seats"
    assert by_code(feature["feature"]["privileges"])["max"]["name"] == "Maximum"
    names = {"privileges": [{"code": "max", "name": ""}, {"code": "max_admins", "name": "A"}]}
    feature = (await lago.put("/features/seats", json={"feature": names})).json()
    assert feature["feature"]["description"] == "Updated"
    assert by_code(feature["feature"]["privileges"])["max"]["name"] == ""
    assert by_code(feature["feature"]["privileges"])["max_admins"]["name"] == "A"
    feature = (await lago.put("/features/seats", json={"feature": {"name": ""}})).json()
    assert feature["feature"]["name"] == ""


async def test_update_adds_select_options_and_unknown_is_404(lago: httpx.AsyncClient) -> None:
    """FeatureUpdateService#update_privileges: ``select_options`` are added to the existing
    ones (a union); features_controller_spec.rb: PATCH, context "when feature does not
    exist"."""
    select = {"code": "sso", "value_type": "select", "config": {"select_options": ["google"]}}
    await make_feature(lago, "auth", privileges=[select])
    more = {"privileges": [{"code": "sso", "config": {"select_options": ["okta", "google"]}}]}

    feature = (await lago.put("/features/auth", json={"feature": more})).json()["feature"]

    assert feature["privileges"][0]["config"] == {"select_options": ["google", "okta"]}
    missing = await lago.put("/features/non_existent", json={"feature": {"name": "x"}})
    assert missing.json()["code"] == "feature_not_found"


async def test_deletes_a_feature(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """features_controller_spec.rb: DELETE /api/v1/features/:code, it "discards the feature",
    "discards all privileges associated with the feature", "returns the discarded feature",
    contexts "when feature does not exist" and "when feature is already discarded"; and
    FeatureDestroyService: the plans' entitlements to it go too."""
    await seats(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 3}}})

    response = await lago.delete("/features/seats")

    assert response.status_code == 200
    assert response.json()["feature"]["code"] == "seats"
    assert response.json()["feature"]["name"] == "Number of seats"
    assert "seats" not in state.features
    assert state.entitlements == {}
    assert (await lago.delete("/features/seats")).json()["code"] == "feature_not_found"
    assert (await lago.delete("/features/non_existent")).status_code == 404


# -- features/privileges_controller_spec.rb --------------------------------------------------


async def test_deletes_a_feature_privilege(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """features/privileges_controller_spec.rb: DELETE
    /api/v1/features/:feature_code/privileges/:code — the privilege and its values go, the
    feature answers without it; unknown feature or privilege is 404."""
    await seats(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 3}}})

    response = await lago.delete("/features/seats/privileges/max")

    assert response.status_code == 200
    assert [p["code"] for p in response.json()["feature"]["privileges"]] == ["max_admins"]
    plan = (await lago.get("/plans/basic/entitlements/seats")).json()["entitlement"]
    assert plan["privileges"] == []
    missing = await lago.delete("/features/seats/privileges/max")
    assert missing.json()["code"] == "privilege_not_found"
    missing = await lago.delete("/features/nope/privileges/max")
    assert missing.json()["code"] == "feature_not_found"


# -- plans/entitlements_controller_spec.rb ---------------------------------------------------


async def max_seats(lago: httpx.AsyncClient) -> None:
    """The plan specs' ``feature`` (seats) with ``privilege`` (max, integer)."""
    await make_feature(lago, "seats", privileges=[{"code": "max", "value_type": "integer"}])


async def test_plan_entitlements_list_and_show(lago: httpx.AsyncClient) -> None:
    """plans/entitlements_controller_spec.rb: GET /api/v1/plans/:plan_code/entitlements, it
    "returns a list of entitlements", context "when the entitlement feature is discarded";
    GET .../entitlements/:feature_code, it "returns the entitlement", "returns not found error
    when plan does not exist", "... when entitlement does not exist"."""
    await max_seats(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 30}}})

    listed = (await lago.get("/plans/basic/entitlements")).json()["entitlements"]
    assert len(listed) == 1
    assert listed[0]["privileges"][0]["value"] == 30
    shown = (await lago.get("/plans/basic/entitlements/seats")).json()["entitlement"]
    assert shown["code"] == "seats"
    assert shown["privileges"][0]["value"] == 30
    missing = await lago.get("/plans/invalid_plan/entitlements/seats")
    assert missing.json()["code"] == "plan_not_found"
    missing = await lago.get("/plans/basic/entitlements/invalid_feature")
    assert missing.json()["code"] == "entitlement_not_found"
    await lago.delete("/features/seats")
    assert (await lago.get("/plans/basic/entitlements")).json() == {"entitlements": []}


async def test_post_creates_then_replaces(lago: httpx.AsyncClient) -> None:
    """plans/entitlements_controller_spec.rb: POST, it "creates entitlements for the plan",
    context "when plan has existing entitlements" it "replaces existing entitlements", and
    "when feature has multiple privileges"; PlanEntitlementsUpdateService: features not in
    the payload are removed."""
    await max_seats(lago)
    await make_feature(lago, "storage", privileges=[{"code": "gb", "value_type": "integer"}])
    await lago.put(
        "/features/seats",
        json={"feature": {"privileges": [{"code": "max_admins", "value_type": "integer"}]}},
    )
    first = {"seats": {"max": "10"}, "storage": {"gb": 5}}
    await lago.post("/plans/basic/entitlements", json={"entitlements": first})

    both = {"seats": {"max": 25, "max_admins": 5}}
    response = await lago.post("/plans/basic/entitlements", json={"entitlements": both})

    assert response.status_code == 200
    assert response.json()["entitlements"] == [
        {
            "code": "seats",
            "name": None,
            "description": None,
            "privileges": [
                {"code": "max", "name": None, "value_type": "integer", "value": 25, "config": {}},
                {
                    "code": "max_admins",
                    "name": None,
                    "value_type": "integer",
                    "value": 5,
                    "config": {},
                },
            ],
        }
    ]


@pytest.mark.parametrize("method", ["post", "patch"])
@pytest.mark.parametrize(
    ("entitlements", "status", "details"),
    [
        ({"nonexistent_feature": {"max": 25}}, 404, "feature_not_found"),
        ({"seats": {"nonexistent_privilege": 25}}, 404, "privilege_not_found"),
        ({"seats": {"max": [12, 13]}}, 422, {"max_privilege_value": ["value_is_invalid"]}),
        ({"seats": {"max": "one thousand!!"}}, 422, {"max_privilege_value": ["value_is_invalid"]}),
        (
            {"seats": {"invitation": "okta"}},
            422,
            {"invitation_privilege_value": ["value_not_in_select_options"]},
        ),
    ],
    ids=[
        "when feature does not exist",
        "when privilege does not exist",
        "when privilege value is invalid (array)",
        "when privilege value is invalid (text)",
        "when privilege value is not in select_options",
    ],
)
async def test_plan_entitlement_refusals(
    lago: httpx.AsyncClient,
    state: EmulatorState,
    method: str,
    entitlements: dict[str, Any],
    status: int,
    details: Any,
) -> None:
    """plans/entitlements_controller_spec.rb: POST and PATCH, the contexts named by the ids;
    the transaction leaves the plan's entitlements as they were."""
    await max_seats(lago)
    invitation = {
        "code": "invitation",
        "value_type": "select",
        "config": {"select_options": ["email", "phone", "slack"]},
    }
    await lago.put("/features/seats", json={"feature": {"privileges": [invitation]}})
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 10}}})
    before = (await lago.get("/plans/basic/entitlements")).json()

    response = await lago.request(
        method.upper(), "/plans/basic/entitlements", json={"entitlements": entitlements}
    )

    assert response.status_code == status
    if status == 404:
        assert response.json()["code"] == details
    else:
        assert response.json()["code"] == "validation_errors"
        assert response.json()["error_details"] == details
    assert (await lago.get("/plans/basic/entitlements")).json() == before


async def test_unknown_plan_and_empty_payloads(lago: httpx.AsyncClient) -> None:
    """plans/entitlements_controller_spec.rb: POST and PATCH, contexts "when plan does not
    exist" and "when entitlements params is empty" (POST answers none; PATCH keeps them)."""
    await max_seats(lago)
    payload = {"entitlements": {"seats": {"max": 10}}}
    for method in ("POST", "PATCH"):
        missing = await lago.request(method, "/plans/invalid_plan/entitlements", json=payload)
        assert missing.json()["code"] == "plan_not_found"
    await lago.post("/plans/basic/entitlements", json=payload)

    kept = await lago.patch("/plans/basic/entitlements", json={"entitlements": {}})
    assert kept.json()["entitlements"][0]["privileges"][0]["value"] == 10
    emptied = await lago.post("/plans/basic/entitlements", json={"entitlements": {}})
    assert emptied.json() == {"entitlements": []}


async def test_patch_updates_and_adds(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """plans/entitlements_controller_spec.rb: PATCH, it "updates existing entitlement value",
    "does not create new entitlement", contexts "when privilege value does not exist" and
    "when entitlement does not exist"."""
    await max_seats(lago)
    await lago.put(
        "/features/seats",
        json={"feature": {"privileges": [{"code": "max_admins", "value_type": "integer"}]}},
    )
    await make_feature(lago, "storage", privileges=[{"code": "max_gb", "value_type": "integer"}])
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": "10"}}})

    updated = await lago.patch(
        "/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 60}}}
    )
    assert updated.json()["entitlements"][0]["privileges"][0]["value"] == 60
    assert len(state.entitlements) == 1
    added = await lago.patch(
        "/plans/basic/entitlements",
        json={"entitlements": {"seats": {"max_admins": 30}, "storage": {"max_gb": 100}}},
    )
    entitlements = added.json()["entitlements"]
    assert by_code(entitlements[0]["privileges"])["max_admins"]["value"] == 30
    assert by_code(entitlements[0]["privileges"])["max"]["value"] == 60
    assert entitlements[1]["code"] == "storage"
    assert len(state.entitlements) == 2


async def test_delete_a_plan_entitlement(lago: httpx.AsyncClient) -> None:
    """plans/entitlements_controller_spec.rb: DELETE .../entitlements/:feature_code, it
    "deletes the entitlement and its values" (answered as it was), "returns not found error
    when plan does not exist", "... when entitlement does not exist"."""
    await max_seats(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 30}}})

    response = await lago.delete("/plans/basic/entitlements/seats")

    assert response.status_code == 200
    assert response.json()["entitlement"]["code"] == "seats"
    assert response.json()["entitlement"]["privileges"][0]["code"] == "max"
    assert (await lago.get("/plans/basic/entitlements")).json() == {"entitlements": []}
    missing = await lago.delete("/plans/invalid_plan/entitlements/seats")
    assert missing.json()["code"] == "plan_not_found"
    missing = await lago.delete("/plans/basic/entitlements/seats")
    assert missing.json()["code"] == "entitlement_not_found"


# -- plans/entitlements/privileges_controller_spec.rb ----------------------------------------


async def test_delete_a_plan_entitlement_privilege(lago: httpx.AsyncClient) -> None:
    """plans/entitlements/privileges_controller_spec.rb: DELETE
    .../entitlements/:entitlement_code/privileges/:code — the value goes, the entitlement and
    the feature's privilege stay; unknown plan, entitlement, privilege are 404."""
    await max_seats(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 30}}})

    response = await lago.delete("/plans/basic/entitlements/seats/privileges/max")

    assert response.status_code == 200
    assert response.json()["entitlement"] == {
        "code": "seats",
        "name": None,
        "description": None,
        "privileges": [],
    }
    feature = (await lago.get("/features/seats")).json()["feature"]
    assert [p["code"] for p in feature["privileges"]] == ["max"]
    codes = [
        (await lago.delete(path)).json()["code"]
        for path in (
            "/plans/basic/entitlements/seats/privileges/max",
            "/plans/basic/entitlements/nope/privileges/max",
            "/plans/nope/entitlements/seats/privileges/max",
        )
    ]
    assert codes == ["privilege_not_found", "entitlement_not_found", "plan_not_found"]


# -- subscriptions/entitlements_controller_spec.rb -------------------------------------------


async def subscribe(lago: httpx.AsyncClient, external_id: str = "sub-1") -> None:
    await lago.post("/customers", json={"customer": {"external_id": "acme"}})
    body = {"external_customer_id": "acme", "plan_code": "basic", "external_id": external_id}
    response = await lago.post("/subscriptions", json={"subscription": body})
    assert response.status_code == 200, response.text


async def max_and_root(lago: httpx.AsyncClient) -> None:
    """The subscription specs' feature (seats, "Feature Name") with ``max`` (integer) and
    ``root?`` (boolean)."""
    privileges = [
        {"code": "max", "value_type": "integer"},
        {"code": "root?", "value_type": "boolean"},
    ]
    await make_feature(
        lago, "seats", name="Feature Name", description="Feature Description", privileges=privileges
    )


async def test_subscription_entitlements_join_plan_and_overrides(lago: httpx.AsyncClient) -> None:
    """subscriptions/entitlements_controller_spec.rb: GET
    /api/v1/subscriptions/:external_id/entitlements, it "returns a list of entitlements" (a
    plan value and a subscription-only value of the same feature), and "returns not found
    error when subscription does not exist"."""
    await max_and_root(lago)
    await subscribe(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 30}}})
    await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"root?": True}}}
    )

    response = await lago.get("/subscriptions/sub-1/entitlements")

    entitlement = response.json()["entitlements"]
    assert len(entitlement) == 1
    assert {k: entitlement[0][k] for k in ("code", "name", "description", "overrides")} == {
        "code": "seats",
        "name": "Feature Name",
        "description": "Feature Description",
        "overrides": {"root?": True},
    }
    assert by_code(entitlement[0]["privileges"]) == {
        "root?": {
            "code": "root?",
            "name": None,
            "value_type": "boolean",
            "config": {},
            "value": True,
            "plan_value": None,
            "override_value": True,
        },
        "max": {
            "code": "max",
            "name": None,
            "value_type": "integer",
            "config": {},
            "value": 30,
            "plan_value": 30,
            "override_value": None,
        },
    }
    missing = await lago.get("/subscriptions/invalid_subscription/entitlements")
    assert missing.json()["code"] == "subscription_not_found"


async def test_subscription_status_selects_the_subscription(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions/entitlements_controller_spec.rb: GET, context "when there are
    subscriptions in :active, :pending, and :terminated status" (``subscription_status``,
    and the old ``status`` param)."""
    await max_and_root(lago)
    for status, value in (("terminated", 300), ("pending", 200), ("active", 100)):
        await subscribe(lago, status)
        await lago.patch(
            f"/subscriptions/{status}/entitlements",
            json={"entitlements": {"seats": {"max": value}}},
        )
        subscription = state.subscription(status)
        assert subscription is not None
        subscription.update(external_id="test", status=status)

    async def override(**params: str) -> Any:
        response = await lago.get("/subscriptions/test/entitlements", params=params)
        return response.json()["entitlements"][0]["overrides"]["max"]

    assert await override() == 100
    assert await override(subscription_status="pending") == 200
    assert await override(subscription_status="terminated") == 300
    assert await override(status="pending") == 200
    assert await override(status="terminated") == 300


async def test_patch_overrides_a_plan_value(lago: httpx.AsyncClient, state: EmulatorState) -> None:
    """subscriptions/entitlements_controller_spec.rb: PATCH, it "updates existing entitlement
    value" and "does not create new entitlement" (one subscription entitlement is added),
    context "when privilege value does not exist"."""
    await max_and_root(lago)
    await lago.put(
        "/features/seats",
        json={"feature": {"privileges": [{"code": "max_admins", "value_type": "integer"}]}},
    )
    await subscribe(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": "10"}}})

    response = await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"max": 60}}}
    )

    entitlements = response.json()["entitlements"]
    assert len(entitlements) == 1
    max_value = by_code(entitlements[0]["privileges"])["max"]
    assert (max_value["value"], max_value["plan_value"], max_value["override_value"]) == (
        60,
        10,
        60,
    )
    assert entitlements[0]["overrides"] == {"max": 60}
    assert len(state.entitlements) == 2
    added = await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"max_admins": 30}}}
    )
    assert by_code(added.json()["entitlements"][0]["privileges"])["max_admins"]["value"] == 30


async def test_patch_with_the_plan_value_restores_a_removed_feature(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions/entitlements_controller_spec.rb: PATCH, context "when feature was removed
    via entitlement removal", it "removes the removal to restore the feature" (and no
    subscription entitlement is made)."""
    await max_and_root(lago)
    await subscribe(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": "10"}}})
    await lago.delete("/subscriptions/sub-1/entitlements/seats")
    assert (await lago.get("/subscriptions/sub-1/entitlements")).json() == {"entitlements": []}

    response = await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"max": 10}}}
    )

    assert response.json()["entitlements"][0]["overrides"] == {}
    assert state.entitlement_removals == []
    assert [e for e in state.entitlements.values() if e["subscription_id"]] == []


async def test_patch_adds_a_feature_the_plan_lacks(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions/entitlements_controller_spec.rb: PATCH, context "when entitlement does not
    exist", it "creates new entitlement with value" (stored as the string "100")."""
    await max_and_root(lago)
    await make_feature(lago, "storage", privileges=[{"code": "max_gb", "value_type": "integer"}])
    await subscribe(lago)

    await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"storage": {"max_gb": 100}}}
    )

    (entitlement,) = [e for e in state.entitlements.values() if e["subscription_id"]]
    assert [v["value"] for v in entitlement["values"]] == ["100"]


async def test_subscription_patch_refusals(lago: httpx.AsyncClient) -> None:
    """subscriptions/entitlements_controller_spec.rb: PATCH, contexts "when feature does not
    exist", "when privilege does not exist", "when subscription does not exist", and "when
    entitlements params is empty"."""
    await max_and_root(lago)
    await subscribe(lago)
    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": "10"}}})
    path = "/subscriptions/sub-1/entitlements"

    codes = [
        (await lago.patch(p, json={"entitlements": e})).json().get("code")
        for p, e in (
            (path, {"nonexistent_feature": {"max": 60}}),
            (path, {"seats": {"nonexistent_privilege": 60}}),
            ("/subscriptions/invalid_subscription/entitlements", {"seats": {"max": 60}}),
        )
    ]

    assert codes == ["feature_not_found", "privilege_not_found", "subscription_not_found"]
    kept = (await lago.patch(path, json={"entitlements": {}})).json()["entitlements"]
    assert by_code(kept[0]["privileges"])["max"]["value"] == 10


async def test_delete_a_subscription_entitlement(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions/entitlements_controller_spec.rb: DELETE .../entitlements/:feature_code, it
    "deletes the entitlement and its values", context "when feature is on plan too" it "also
    add a feature removal", "when subscription had privilege removal" it "cleans up the
    privilege removal", "when feature was already removed via entitlement removal" it
    "returns a success"; "returns not found error when subscription does not exist", "...
    when feature does not exist"."""
    await max_and_root(lago)
    await subscribe(lago)
    plan_values = {"seats": {"max": 30, "root?": False}}
    await lago.post("/plans/basic/entitlements", json={"entitlements": plan_values})
    await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"max": 40}}}
    )
    await lago.delete("/subscriptions/sub-1/entitlements/seats/privileges/root%3F")
    assert len(state.entitlement_removals) == 1

    response = await lago.delete("/subscriptions/sub-1/entitlements/seats")

    assert response.status_code == 200
    assert response.json() == {"entitlements": []}
    assert [e for e in state.entitlements.values() if e["subscription_id"]] == []
    assert [set(r) - {"subscription_id"} for r in state.entitlement_removals] == [{"feature_id"}]
    again = await lago.delete("/subscriptions/sub-1/entitlements/seats")
    assert again.status_code == 200
    assert again.json() == {"entitlements": []}
    assert len(state.entitlement_removals) == 1
    missing = await lago.delete("/subscriptions/invalid_subscription/entitlements/seats")
    assert missing.json()["code"] == "subscription_not_found"
    missing = await lago.delete("/subscriptions/sub-1/entitlements/invalid_feature")
    assert missing.json()["code"] == "feature_not_found"


# -- subscriptions/entitlements/privileges_controller_spec.rb --------------------------------


async def test_delete_a_subscription_privilege(
    lago: httpx.AsyncClient, state: EmulatorState
) -> None:
    """subscriptions/entitlements/privileges_controller_spec.rb: DELETE #destroy, it "deletes
    the entitlement value", "does not delete the entitlement", the three not-found examples;
    context "when privilege is from the plan" it "adds a privilege removal", and "when
    privilege removal already exists" it "returns a success" (no second removal)."""
    await max_and_root(lago)
    await subscribe(lago)
    await lago.patch(
        "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"max": 30}}}
    )
    path = "/subscriptions/sub-1/entitlements/seats/privileges/max"

    response = await lago.delete(path)

    assert response.status_code == 200
    (entitlement,) = [e for e in state.entitlements.values() if e["subscription_id"]]
    assert entitlement["values"] == []
    assert state.entitlement_removals == []
    codes = [
        (await lago.delete(p)).json()["code"]
        for p in (
            "/subscriptions/invalid_subscription/entitlements/seats/privileges/max",
            "/subscriptions/sub-1/entitlements/invalid_feature/privileges/max",
            "/subscriptions/sub-1/entitlements/seats/privileges/invalid_privilege",
        )
    ]
    assert codes == ["subscription_not_found", "feature_not_found", "privilege_not_found"]

    await lago.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": 10}}})
    await lago.delete(path)
    assert len(state.entitlement_removals) == 1
    again = await lago.delete(path)
    assert again.status_code == 200
    assert again.json()["entitlements"][0]["privileges"] == []
    assert len(state.entitlement_removals) == 1


async def test_values_are_cast_as_lago_casts_them(lago: httpx.AsyncClient) -> None:
    """CreateOrUpdateConcern#validate_value and Utils::Entitlement.cast_value: integers as
    numbers or digit strings, booleans as true/false or "true"/"false" (stored "t"/"f"),
    strings, select options; a blank string is ``privilege.value`` ``value_is_mandatory``."""
    privileges = [
        {"code": "n", "value_type": "integer"},
        {"code": "b", "value_type": "boolean"},
        {"code": "s", "value_type": "string"},
        {"code": "o", "value_type": "select", "config": {"select_options": ["x", "y"]}},
    ]
    await make_feature(lago, "f", privileges=privileges)
    values = {"n": "42", "b": "false", "s": "hello", "o": "y"}

    response = await lago.post("/plans/basic/entitlements", json={"entitlements": {"f": values}})

    answered = {p["code"]: p["value"] for p in response.json()["entitlements"][0]["privileges"]}
    assert answered == {"n": 42, "b": False, "s": "hello", "o": "y"}
    for bad in ({"b": "yes"}, {"n": 1.5}, {"n": True}, {"s": 3}):
        response = await lago.patch("/plans/basic/entitlements", json={"entitlements": {"f": bad}})
        code = next(iter(bad))
        assert response.json()["error_details"] == {f"{code}_privilege_value": ["value_is_invalid"]}
    blank = await lago.patch("/plans/basic/entitlements", json={"entitlements": {"f": {"s": " "}}})
    assert blank.json()["error_details"] == {"privilege.value": ["value_is_mandatory"]}


@pytest.mark.usefixtures("require_spec")
async def test_every_entitlement_endpoint_matches_the_spec(
    state: EmulatorState, make_client: Any
) -> None:
    """Each route, driven through the contract recorder (the spec's quirks for subscription
    entitlements are listed in ``lago/emulator/contract.py``)."""
    from lago.emulator import create_app

    async with make_client(create_app(state, api_key="test-lago-key", validate=True)) as c:
        await subscribe(c)
        select = {"code": "model", "value_type": "select", "config": {"select_options": ["a"]}}
        feature = {"code": "seats", "name": "Seats", "privileges": [select]}
        calls = [
            c.post("/features", json={"feature": feature}),
            c.get("/features", params={"search_term": "sea", "page": 1, "per_page": 10}),
            c.get("/features/seats"),
            c.put("/features/seats", json={"feature": {"privileges": [{"code": "max"}]}}),
            c.post("/plans/basic/entitlements", json={"entitlements": {"seats": {"model": "a"}}}),
            c.patch("/plans/basic/entitlements", json={"entitlements": {"seats": {"max": "7"}}}),
            c.get("/plans/basic/entitlements"),
            c.get("/plans/basic/entitlements/seats"),
            c.patch("/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {}}}),
            c.patch(
                "/subscriptions/sub-1/entitlements", json={"entitlements": {"seats": {"max": "9"}}}
            ),
            c.get("/subscriptions/sub-1/entitlements"),
            c.delete("/subscriptions/sub-1/entitlements/seats/privileges/model"),
            c.delete("/subscriptions/sub-1/entitlements/seats"),
            c.delete("/plans/basic/entitlements/seats/privileges/model"),
            c.delete("/plans/basic/entitlements/seats"),
            c.delete("/features/seats/privileges/max"),
            c.delete("/features/seats"),
            c.get("/features/seats"),
        ]
        statuses = [(await call).status_code for call in calls]

    assert statuses == [200] * 17 + [404]
    assert not state.contract_violations, "\n\n".join(state.contract_violations)
