from prometheus_client import Counter, Gauge, Histogram

EVENTS_ACCEPTED = Counter("gateway_usage_events_accepted_total", "Usage events durably accepted")
EVENTS_DUPLICATE = Counter(
    "gateway_usage_events_duplicate_total", "Identical resends answered without storing"
)
EVENTS_REJECTED = Counter("gateway_usage_events_rejected_total", "Usage events refused with a 4xx")
EVENTS_FORWARDED = Counter("gateway_usage_events_forwarded_total", "Usage events Lago now holds")
EVENTS_DEAD = Counter("gateway_usage_events_dead_total", "Usage events Lago refused (dead letter)")
FORWARD_RETRIES = Counter(
    "gateway_usage_forward_retries_total", "Forward batches retried after a transient failure"
)
EVENTS_PENDING = Gauge("gateway_usage_events_pending", "Usage events waiting to be forwarded")
OLDEST_PENDING_AGE = Gauge(
    "gateway_usage_oldest_pending_age_seconds", "Age of the oldest event not yet forwarded"
)
EVENTS_DEAD_STORED = Gauge("gateway_usage_events_dead_stored", "Events in the dead letter now")
FORWARD_LATENCY = Histogram(
    "gateway_usage_forward_batch_seconds",
    "Latency of one forward batch to Lago",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAGO_UNWELL = Gauge(
    "gateway_usage_forward_paused",
    "1 while forwarding is paused because Lago as a whole is not taking events",
)
LAGO_PROBES = Counter(
    "gateway_usage_forward_probes_total", "Probes of Lago sent while forwarding was paused"
)
FORWARD_SPLITS = Counter(
    "gateway_usage_forward_splits_total",
    "Batches split in two because Lago's answer named no event",
)
