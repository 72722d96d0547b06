"""Features, privileges and entitlements: what a plan (or one subscription) unlocks.

Copied from lago-api's ``app/controllers/api/v1/features_controller.rb``,
``features/privileges_controller.rb``, ``plans/entitlements_controller.rb`` (and its
``privileges_controller.rb``), ``subscriptions/entitlements_controller.rb`` (and its
``privileges_controller.rb``), the services in ``app/services/entitlement/``, the models in
``app/models/entitlement/``, ``app/queries/entitlement/subscription_entitlement_query.rb``,
``app/services/utils/entitlement.rb`` and the serializers in ``app/serializers/v1/entitlement/``.

State (``EmulatorState``): ``features`` by code, each with its ``privileges``;
``entitlements`` by ``lago_id``, each holding ``feature_id``, ``plan_id`` *or*
``subscription_id``, and ``values`` (``privilege_id`` → the stored string, as Lago's
``character varying`` column keeps it: ``25`` → ``"25"``, ``true`` → ``"t"``);
``entitlement_removals``, the ``SubscriptionFeatureRemoval`` rows (a feature or a privilege of
the plan taken away from one subscription). Every write is one transaction: a refusal
part-way leaves nothing changed.

The code is in ``entitlement_values`` (casting, validation, shared helpers), ``features``,
``plan_entitlements`` and ``subscription_entitlements``; this module re-exports their handlers
(``app._entitlement_routes``) and public functions.
"""

from __future__ import annotations

from .entitlement_values import VALUE_TYPES, cast_value
from .features import (
    create_feature,
    feature_privilege_destroy,
    features_create,
    features_destroy,
    features_index,
    features_show,
    features_update,
    get_feature,
    update_feature,
)
from .plan_entitlements import (
    plan_create,
    plan_destroy,
    plan_entitlements,
    plan_index,
    plan_privilege_destroy,
    plan_show,
    plan_update,
    update_plan_entitlements,
)
from .subscription_entitlements import (
    subscription_destroy,
    subscription_entitlements,
    subscription_index,
    subscription_privilege_destroy,
    subscription_update,
    update_subscription_entitlements,
)

__all__ = [
    "VALUE_TYPES",
    "cast_value",
    "create_feature",
    "feature_privilege_destroy",
    "features_create",
    "features_destroy",
    "features_index",
    "features_show",
    "features_update",
    "get_feature",
    "plan_create",
    "plan_destroy",
    "plan_entitlements",
    "plan_index",
    "plan_privilege_destroy",
    "plan_show",
    "plan_update",
    "subscription_destroy",
    "subscription_entitlements",
    "subscription_index",
    "subscription_privilege_destroy",
    "subscription_update",
    "update_feature",
    "update_plan_entitlements",
    "update_subscription_entitlements",
]
