"""Reading the catalog file: YAML to validated models, every problem reported with its line.

``lago/catalog.yaml:14: plans[1].interval: must be one of weekly, monthly, ...``: lines
come from the YAML node marks, so a pydantic error's location is walked down the node tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.catalog.schemas import CREDIT_PLACES, BillableMetric, Catalog, Plan
from gateway.config import Settings

DEFAULT_PATH = "lago/catalog.yaml"
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class CatalogError(Exception):
    """The catalog file cannot be used; ``problems`` say where and why."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


def load_catalog(path: Path | str) -> Catalog:
    """Read and validate a catalog file, or raise CatalogError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(str(path), [Problem(None, "", f"cannot read: {exc.strerror}")]) from exc
    return parse_catalog(text, str(path))


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog YAML text, or raise CatalogError naming ``source`` and lines."""
    node, data = _compose(text, source)
    problems = _duplicate_keys(node)
    if problems:
        raise CatalogError(source, problems)
    try:
        catalog = Catalog.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise CatalogError(source, [_problem(node, err) for err in exc.errors()]) from exc
    problems = [Problem(_line(node, loc), _path(loc), msg) for loc, msg in cross_check(catalog)]
    if problems:
        raise CatalogError(source, problems)
    return catalog


def configured_catalog_path(settings: Settings) -> Path | None:
    """The file ``GATEWAY_CATALOG_PATH`` names (``resolve_catalog_path``; set explicitly, it
    must exist)."""
    explicit = "catalog_path" in settings.model_fields_set
    return resolve_catalog_path(settings.catalog_path, explicit=explicit)


def resolve_catalog_path(value: str, *, explicit: bool) -> Path | None:
    """The file to load for setting ``value``: None for "" or an absent default file.

    The default ``lago/catalog.yaml`` is looked up in the working folder, then in the
    installed ``lago`` package; an explicitly configured path must exist.
    """
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        return path
    if value == DEFAULT_PATH:
        packaged = Path(str(resources.files("lago") / "catalog.yaml"))
        if packaged.is_file():
            return packaged
        if not explicit:
            return None
    raise CatalogError(value, [Problem(None, "", "GATEWAY_CATALOG_PATH: no such file")])


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = f"invalid YAML: {exc.problem or exc.context}"
        raise CatalogError(source, [Problem(line, "", problem)]) from exc
    except yaml.YAMLError as exc:
        raise CatalogError(source, [Problem(None, "", f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    if node is not None and not isinstance(node, yaml.MappingNode):
        raise CatalogError(source, [Problem(node.start_mark.line + 1, "", "must be a mapping")])
    return node, data


def _duplicate_keys(node: yaml.Node | None, path: Loc = ()) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                loc = (*path, name)
                problems.append(Problem(key.start_mark.line + 1, _path(loc), "duplicate key"))
            seen.add(name)
            problems += _duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, (*path, index))
    return problems


def _walk(node: yaml.Node | None, loc: Loc) -> tuple[yaml.Node | None, Loc]:
    """The deepest node on ``loc`` and the part of ``loc`` that exists in the file."""
    found: Loc = ()
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node, found = child, (*found, part)
    return node, found


def _line(root: yaml.Node | None, loc: Loc) -> int | None:
    node, _ = _walk(root, loc)
    return node.start_mark.line + 1 if node is not None else None


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(root: yaml.Node | None, err: Any) -> Problem:
    loc: Loc = tuple(err["loc"])
    _, found = _walk(root, loc)
    # A missing or unknown field is named by the full location; a union tag never is.
    shown = loc if err["type"] in ("missing", "extra_forbidden") else found
    return Problem(_line(root, loc), _path(shown), _message(err))


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        choices = [c.strip().strip("'\"") for c in expected.replace(" or ", ", ").split(",")]
        return "must be one of " + ", ".join(choices)
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message[:1].lower() + message[1:]


def cross_check(catalog: Catalog) -> list[tuple[Loc, str]]:
    """Problems between sections: unique codes, references, allowances, pack prices."""
    problems = _duplicate_codes(catalog)
    metrics = {m.code: m for m in catalog.billable_metrics}
    for index, plan in enumerate(catalog.plans):
        problems += _check_plan(("plans", index), plan, metrics)
    problems += _check_coupons(catalog, set(metrics))
    problems += _check_features(catalog, set(metrics))
    for name, cost in catalog.token_costs.items():
        if cost.metric not in metrics:
            loc: Loc = ("token_costs", name, "metric")
            problems.append((loc, f"unknown billable metric {cost.metric!r}"))
    problems += _check_packs(catalog)
    return problems


def _duplicate_codes(catalog: Catalog) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for section in ("billable_metrics", "plans", "coupons", "features", "token_packs"):
        seen: set[str] = set()
        for index, item in enumerate(getattr(catalog, section)):
            if item.code in seen:
                problems.append(((section, index, "code"), f"duplicate code {item.code!r}"))
            seen.add(item.code)
    return problems


def _check_coupons(catalog: Catalog, metrics: set[str]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    plans = {p.code for p in catalog.plans}
    for index, coupon in enumerate(catalog.coupons):
        applies = coupon.applies_to
        for code in applies.plan_codes if applies else []:
            if code not in plans:
                loc: Loc = ("coupons", index, "applies_to", "plan_codes")
                problems.append((loc, f"unknown plan {code!r}"))
        for code in applies.billable_metric_codes if applies else []:
            if code not in metrics:
                loc = ("coupons", index, "applies_to", "billable_metric_codes")
                problems.append((loc, f"unknown billable metric {code!r}"))
    return problems


def _check_features(catalog: Catalog, metrics: set[str]) -> list[tuple[Loc, str]]:
    """A feature's metric exists; a plan's entitlements name features and privileges of the
    file, with values that fit each privilege."""
    problems: list[tuple[Loc, str]] = []
    for index, feature in enumerate(catalog.features):
        if feature.metric is not None and metrics and feature.metric not in metrics:
            loc: Loc = ("features", index, "metric")
            problems.append((loc, f"unknown billable metric {feature.metric!r}"))
    for index, plan in enumerate(catalog.plans):
        for code, values in plan.entitlements.items():
            loc = ("plans", index, "entitlements", code)
            known = catalog.feature(code)
            if known is None:
                problems.append((loc, f"unknown feature {code!r}"))
                continue
            for name, value in values.items():
                privilege = known.privilege(name)
                if privilege is None:
                    problems.append(((*loc, name), f"{code} has no privilege {name!r}"))
                elif not privilege.accepts(value):
                    expected: str = privilege.value_type
                    if privilege.config is not None:
                        expected += " of " + ", ".join(privilege.config.select_options)
                    problems.append(((*loc, name), f"{value!r} is not a {expected}"))
    return problems


def _check_plan(at: Loc, plan: Plan, metrics: dict[str, BillableMetric]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    keys: set[str] = set()
    for index, charge in enumerate(plan.charges):
        loc: Loc = (*at, "charges", index)
        metric = metrics.get(charge.billable_metric_code)
        if metric is None:
            msg = f"unknown billable metric {charge.billable_metric_code!r}"
            problems.append(((*loc, "billable_metric_code"), msg))
            continue
        if charge.key in keys:
            problems.append(((*loc, "code"), f"two charges are keyed {charge.key!r}: set code"))
        keys.add(charge.key)
        allowed = {f.key: set(f.values) for f in metric.filters}
        for number, charge_filter in enumerate(charge.filters):
            for key, values in charge_filter.values.items():
                if not set(values) <= allowed.get(key, set()):
                    msg = f"{key}={values} is not a filter of {metric.code}"
                    problems.append(((*loc, "filters", number, "values"), msg))
    for code, allowance in plan.allowances.items():
        loc = (*at, "allowances", code)
        if code not in metrics:
            problems.append((loc, f"unknown billable metric {code!r}"))
            continue
        free = _free_units(plan, code)
        if free is not False and free != allowance.included:
            shown = "unlimited" if free is None else free
            problems.append(((*loc, "included"), f"the plan's charge includes {shown}"))
    return problems + _check_plan_alerts(at, plan)


def _check_plan_alerts(at: Loc, plan: Plan) -> list[tuple[Loc, str]]:
    """A plan's own usage alerts name metrics the plan has an allowance for."""
    metrics = plan.alerts.metrics if plan.alerts is not None else {}
    return [
        ((*at, "alerts", "metrics", code), f"{code!r} is not in the plan's allowances")
        for code in metrics
        if code not in plan.allowances
    ]


def _free_units(plan: Plan, metric: str) -> int | bool | None:
    """Units a plan's charge leaves free (None: unlimited), or False when it cannot tell."""
    charges = [c for c in plan.charges if c.billable_metric_code == metric]
    if len(charges) != 1 or charges[0].filters:
        return False
    charge = charges[0]
    props = charge.properties
    if charge.charge_model == "standard" and props.amount is not None:
        return None if Decimal(props.amount) == 0 else 0
    if charge.charge_model == "graduated" and props.graduated_ranges:
        first = props.graduated_ranges[0]
        if Decimal(first.per_unit_amount) == 0 and Decimal(first.flat_amount) == 0:
            return first.to_value
        return 0
    if charge.charge_model == "package" and props.free_units is not None:
        return props.free_units
    return False


def _check_packs(catalog: Catalog) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    wallet = catalog.token_wallet
    if catalog.token_packs and wallet is None:
        return [(("token_packs",), "token packs need a token_wallet section")]
    if wallet is None:
        return problems
    for index, pack in enumerate(catalog.token_packs):
        paid = pack.paid_credits(wallet)
        if paid != paid.quantize(CREDIT_PLACES):
            msg = f"price {pack.price_cents} cents is not a whole number of credit units"
            problems.append((("token_packs", index, "price_cents"), msg))
        elif pack.granted_credits(wallet) < 0:
            msg = (
                f"costs more than its {pack.total_tokens} tokens are worth at "
                f"rate_amount {wallet.rate_amount}"
            )
            problems.append((("token_packs", index, "price_cents"), msg))
    currencies = {p.amount_currency for p in catalog.plans}
    if currencies - {wallet.currency}:
        msg = "plans are priced in another currency: the wallet cannot pay their invoices"
        problems.append((("token_wallet", "currency"), msg))
    return problems
