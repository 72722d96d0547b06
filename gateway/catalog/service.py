"""Catalog as code against Lago: read Lago's catalog, apply a plan of changes, export.

Apply is idempotent: it compares first, so a second run finds nothing to do. Changes run
in dependency order (metrics, plans, coupons, features, the plans' entitlements), one Lago
call each (a feature's privilege or a plan's feature deleted first is one more); a refusal
stops the run
with what was done so far reported, and re-running picks up from there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gateway.catalog.features import Feature
from gateway.catalog.loader import configured_catalog_path, load_catalog
from gateway.catalog.planner import (
    CatalogPlan,
    Change,
    LagoCatalog,
    charge_ids,
    plan_changes,
    set_fields,
)
from gateway.catalog.schemas import (
    BillableMetric,
    Catalog,
    Charge,
    Coupon,
    Plan,
)
from gateway.config import Settings
from gateway.integrations.lago.client import LagoClient, LagoError
from gateway.logging import get_logger

log = get_logger(__name__)

ROOTS = {
    "billable_metric": "billable_metrics",
    "plan": "plans",
    "coupon": "coupons",
    "feature": "features",
}


@dataclass(frozen=True)
class Applied:
    change: Change
    status: int
    latency_ms: float


Progress = Callable[[int, int, Change], Awaitable[None]]
Done = Callable[[Applied], Awaitable[None]]


async def fetch_lago_catalog(lago: LagoClient) -> LagoCatalog:
    """Lago's billable metrics, plans, coupons and features, every page, and each plan's
    entitlements (none asked for when Lago has no features)."""
    found = {}
    for kind, root in ROOTS.items():
        items = await _all_pages(lago, f"/{root}", root)
        found[kind] = {str(item["code"]): item for item in items}
    entitlements: dict[str, list[dict[str, Any]]] = {}
    if found["feature"]:
        for code in found["plan"]:
            body = await lago.call("GET", f"/plans/{quote(code, safe='')}/entitlements")
            entitlements[code] = body.get("entitlements") or []
    return LagoCatalog(
        found["billable_metric"],
        found["plan"],
        found["coupon"],
        found["feature"],
        entitlements,
    )


async def _all_pages(lago: LagoClient, path: str, root: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page: int | None = 1
    while page:
        body = await lago.call("GET", path, params={"page": page, "per_page": 100})
        items += body.get(root) or []
        next_page = (body.get("meta") or {}).get("next_page")
        page = int(next_page) if next_page else None
    return items


async def apply_changes(
    lago: LagoClient,
    changes: list[Change],
    current: LagoCatalog,
    *,
    before_each: Progress | None = None,
    after_each: Done | None = None,
) -> list[Applied]:
    """Send each change to Lago in order; raises the first LagoError, after reporting progress."""
    metric_ids = {code: str(m["lago_id"]) for code, m in current.billable_metrics.items()}
    done: list[Applied] = []
    for index, change in enumerate(changes, start=1):
        if before_each is not None:
            await before_each(index, len(changes), change)
        started = time.perf_counter()
        answer = await _send(lago, change, metric_ids)
        if change.kind == "billable_metric":
            metric = answer.get("billable_metric") or {}
            metric_ids[change.code] = str(metric.get("lago_id"))
        applied = Applied(change, 200, (time.perf_counter() - started) * 1000)
        done.append(applied)
        if after_each is not None:
            await after_each(applied)
    return done


async def _send(lago: LagoClient, change: Change, metric_ids: dict[str, str]) -> dict[str, Any]:
    if change.kind == "feature":
        return await _send_feature(lago, change)
    if change.kind == "plan_entitlements":
        return await _send_entitlements(lago, change)
    root = ROOTS[change.kind]
    body = _create_body(change, metric_ids) if change.action == "create" else None
    if body is None:
        body = _update_body(change, metric_ids)
    if change.action == "create":
        return await lago.call("POST", f"/{root}", json={change.kind: body})
    path = f"/{root}/{quote(change.code, safe='')}"
    return await lago.call("PUT", path, json={change.kind: body})


async def _send_feature(lago: LagoClient, change: Change) -> dict[str, Any]:
    """``POST /features``; an update deletes the privileges it must first, then ``PUT``s the
    changed fields and, when any privilege changed, every privilege of the file."""
    wanted = change.wanted
    assert isinstance(wanted, Feature)
    if change.action == "create":
        return await lago.call("POST", "/features", json={"feature": feature_body(wanted)})
    path = f"/features/{quote(change.code, safe='')}"
    for code in change.deletions:
        await lago.call("DELETE", f"{path}/privileges/{quote(code, safe='')}")
    changed = {c.path.split(".")[0].split("[")[0] for c in change.fields}
    body = {k: v for k, v in feature_body(wanted).items() if k in changed}
    if not body:
        return {}
    return await lago.call("PUT", path, json={"feature": body})


def feature_body(feature: Feature) -> dict[str, Any]:
    """A feature as Lago takes it (no gateway-only rules; unset name/description left out)."""
    body = lago_fields(feature)
    body["privileges"] = [lago_fields(p) for p in feature.privileges]
    return body


async def _send_entitlements(lago: LagoClient, change: Change) -> dict[str, Any]:
    """``POST /plans/{code}/entitlements``, which replaces the plan's entitlements; a feature
    kept without values is deleted first (Lago keeps values a feature is sent without)."""
    wanted = change.wanted
    assert isinstance(wanted, Plan)
    path = f"/plans/{quote(change.code, safe='')}/entitlements"
    for code in change.deletions:
        await lago.call("DELETE", f"{path}/{quote(code, safe='')}")
    return await lago.call("POST", path, json={"entitlements": wanted.entitlements})


def _create_body(change: Change, metric_ids: dict[str, str]) -> dict[str, Any]:
    wanted = change.wanted
    if isinstance(wanted, Plan):
        body = lago_fields(wanted, exclude={"charges", "allowances"})
        body["charges"] = [charge_body(c, metric_ids, None) for c in wanted.charges]
        return body
    if isinstance(wanted, Coupon):
        return coupon_body(wanted, full=True)
    assert isinstance(wanted, BillableMetric)
    return lago_fields(wanted)


def _update_body(change: Change, metric_ids: dict[str, str]) -> dict[str, Any]:
    """Only the top-level fields that differ; a plan's charges whole when any charge does."""
    wanted = change.wanted
    changed = {c.path.split(".")[0].split("[")[0] for c in change.fields}
    if isinstance(wanted, Coupon):
        return {k: v for k, v in coupon_body(wanted, full=False).items() if k in changed}
    data = set_fields(wanted)
    body = {k: v for k, v in data.items() if k in changed and k != "charges"}
    if isinstance(wanted, Plan) and "charges" in changed:
        ids = charge_ids(change.current)
        body["charges"] = [charge_body(c, metric_ids, ids.get(c.key)) for c in wanted.charges]
    return body


def lago_fields(model: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    """Every field with a value (defaults included), for a create."""
    data = model.model_dump(mode="json", exclude=exclude)
    return {k: v for k, v in data.items() if v is not None}


def charge_body(charge: Charge, metric_ids: dict[str, str], lago_id: str | None) -> dict[str, Any]:
    """A charge as Lago takes it: by metric id; an existing one by its id, set fields only."""
    metric_id = metric_ids.get(charge.billable_metric_code)
    if metric_id is None:
        raise LookupError(f"billable metric {charge.billable_metric_code} is not in Lago")
    if lago_id is None:
        body = lago_fields(charge, exclude={"billable_metric_code", "properties", "filters"})
    else:
        body = set_fields(charge)
        body.pop("billable_metric_code", None)
        body["id"] = lago_id
    body.update(billable_metric_id=metric_id, charge_model=charge.charge_model)
    body["properties"] = charge.properties.model_dump(mode="json", exclude_unset=True)
    body["filters"] = [
        {
            "values": f.values,
            "properties": f.properties.model_dump(mode="json", exclude_unset=True),
            **({"invoice_display_name": f.invoice_display_name} if f.invoice_display_name else {}),
        }
        for f in charge.filters
    ]
    return body


def coupon_body(coupon: Coupon, *, full: bool) -> dict[str, Any]:
    body = lago_fields(coupon) if full else set_fields(coupon)
    applies = body.get("applies_to")
    if applies is not None:
        body["applies_to"] = {
            "plan_codes": applies.get("plan_codes", []),
            "billable_metric_codes": applies.get("billable_metric_codes", []),
        }
    return body


def metric_codes(catalog: Catalog | None) -> set[str] | None:
    """The usage codes a catalog pins (None: no catalog, or one without metrics)."""
    if catalog is None or not catalog.billable_metrics:
        return None
    return catalog.metric_codes


class ApplyFailed(Exception):
    """Lago refused or could not take a change; ``applied`` went through before it."""

    def __init__(self, change: Change, applied: list[Applied], cause: LagoError) -> None:
        super().__init__(f"{change.title} failed: {cause}")
        self.change = change
        self.applied = applied
        self.cause = cause


@dataclass
class ApplyResult:
    plan: CatalogPlan
    applied: list[Applied]


def describe(plan: CatalogPlan, catalog: Catalog) -> list[str]:
    """The diff, one line per created object or changed field, then what stays as is."""
    lines = [line for change in plan.changes for line in change.diff_lines()]
    kept = [
        f"{count} plans' entitlements" if kind == "plan_entitlements" else f"{count} {kind}(s)"
        for kind, count in plan.unchanged.items()
        if count
    ]
    if kept:
        lines.append("= unchanged: " + ", ".join(kept))
    lines += [
        f"? {kind} {code}: in Lago, not in the file (left alone)"
        for kind, code in plan.only_in_lago
    ]
    gated = [f.code for f in catalog.features if f.gates_usage]
    if gated:
        lines.append(f"usage gated by features (gateway-only): {', '.join(gated)}")
    if catalog.token_packs:
        packs = ", ".join(p.code for p in catalog.token_packs)
        lines.append(f"token packs (gateway-only, served from the file): {packs}")
    return lines


async def apply_catalog(
    lago: LagoClient,
    catalog: Catalog,
    *,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda _: None,
    after_each: Done | None = None,
) -> ApplyResult:
    """Compare ``catalog`` with Lago, print the diff through ``say``, then apply it in order."""
    current = await fetch_lago_catalog(lago)
    plan = plan_changes(catalog, current)
    for line in describe(plan, catalog):
        say(line)
    if plan.empty:
        say("nothing to do: Lago already matches the catalog")
        return ApplyResult(plan, [])
    if dry_run:
        say(f"dry run: {len(plan.changes)} change(s) planned, nothing applied")
        return ApplyResult(plan, [])
    applied: list[Applied] = []

    async def progress(index: int, total: int, change: Change) -> None:
        say(f"[{index}/{total}] {change.title}")

    async def record(done: Applied) -> None:
        applied.append(done)
        if after_each is not None:
            await after_each(done)

    try:
        await apply_changes(lago, plan.changes, current, before_each=progress, after_each=record)
    except LagoError as exc:
        failed = plan.changes[len(applied)]
        raise ApplyFailed(failed, applied, exc) from exc
    say(f"applied {len(applied)} change(s)")
    return ApplyResult(plan, applied)


async def load_configured(settings: Settings, lago: LagoClient) -> Catalog | None:
    """The configured catalog file (``GATEWAY_CATALOG_PATH``), or None; applied to an embedded
    emulator so that its plans and metrics exist there."""
    path = configured_catalog_path(settings)
    if path is None:
        log.info("catalog.none")
        return None
    catalog = load_catalog(path)
    if settings.uses_emulator:
        result = await apply_catalog(lago, catalog)
        log.info("catalog.applied_to_emulator", changes=len(result.applied))
    log.info("catalog.loaded", path=str(path), metrics=len(catalog.billable_metrics))
    return catalog
