from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter(
    "gateway_webhooks_inbound_received_total",
    "Verified inbound webhooks stored for handling",
    ["source"],
)
DUPLICATE = Counter(
    "gateway_webhooks_inbound_duplicate_total",
    "Verified inbound webhooks already stored (answered 200, handled once)",
    ["source"],
)
REJECTED = Counter(
    "gateway_webhooks_inbound_rejected_total",
    "Inbound webhooks refused before storage",
    ["source", "reason"],
)
HANDLED = Counter(
    "gateway_webhooks_inbound_handled_total",
    "Inbound webhooks whose gateway handlers all succeeded (relaying does not wait for them)",
    ["source"],
)
HANDLE_FAILURES = Counter(
    "gateway_webhooks_inbound_handle_failures_total",
    "Handler runs that failed: transient (retried on a schedule) or permanent (dead at once)",
    ["source", "kind"],
)
DEAD = Counter(
    "gateway_webhooks_inbound_dead_total",
    "Inbound webhooks whose handling went dead (a permanent failure or every retry spent)",
    ["source"],
)
HANDLING_LAG = Histogram(
    "gateway_webhooks_inbound_handling_lag_seconds",
    "From receipt to every gateway handler done",
    ["source"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
PENDING = Gauge("gateway_webhooks_inbound_pending", "Inbound webhooks waiting to be handled")
OLDEST_PENDING_AGE = Gauge(
    "gateway_webhooks_inbound_oldest_pending_age_seconds",
    "Age of the oldest inbound webhook not yet handled",
)
DEAD_STORED = Gauge(
    "gateway_webhooks_inbound_dead_stored", "Inbound webhooks dead, waiting for a replay"
)
