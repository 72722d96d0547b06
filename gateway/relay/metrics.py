from prometheus_client import Counter, Gauge, Histogram

MESSAGES_ENQUEUED = Counter(
    "gateway_relay_messages_enqueued_total", "Relay messages stored", ["source"]
)
MESSAGES_DUPLICATE = Counter(
    "gateway_relay_messages_duplicate_total", "Relay messages refused as already stored (same id)"
)
DELIVERIES = Counter(
    "gateway_relay_deliveries_total",
    "Delivery attempts by outcome: delivered, retry (will try again), failed (gave up)",
    ["outcome"],
)
ATTEMPT_LATENCY = Histogram(
    "gateway_relay_attempt_seconds",
    "Latency of one delivery attempt to a subscriber",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
RECEIPT_TO_DELIVERY = Histogram(
    "gateway_relay_receipt_to_delivery_seconds",
    "From a message being stored to its successful delivery to one endpoint",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 5, 30, 300, 3600),
)
ENDPOINTS_DISABLED = Counter(
    "gateway_relay_endpoints_disabled_total", "Endpoints disabled by the sender", ["reason"]
)
DELIVERIES_PENDING = Gauge(
    "gateway_relay_deliveries_pending", "Deliveries waiting to be attempted or retried"
)
