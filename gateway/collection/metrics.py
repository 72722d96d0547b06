from prometheus_client import Counter

ATTEMPTS = Counter(
    "gateway_collection_attempts_total", "Collection attempts reaching a status", ["outcome"]
)
STRIPE_CALLS = Counter("gateway_collection_stripe_calls_total", "Stripe writes by call", ["call"])
LAGO_SYNCED = Counter(
    "gateway_collection_lago_synced_total", "Payment outcomes written to Lago", ["payment_status"]
)
LAGO_SYNC_FAILURES = Counter(
    "gateway_collection_lago_sync_failures_total", "Payment outcomes Lago could not take yet"
)
DUNNING_EXHAUSTED = Counter(
    "gateway_collection_dunning_exhausted_total", "Invoices left failed after the last retry"
)
PAYMENT_LINKS = Counter("gateway_collection_payment_links_total", "Hosted payment links opened")
REFUNDS = Counter("gateway_collection_refunds_total", "Stripe refunds by outcome", ["outcome"])
DUPLICATE_CHARGES = Counter(
    "gateway_collection_duplicate_charges_total", "Second payments on a paid invoice, refunded"
)
RECONCILER_REPAIRS = Counter(
    "gateway_collection_reconciler_repairs_total",
    "What the reconciler found and repaired",
    ["kind"],
)
