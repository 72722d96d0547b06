"""The API's table of contents: one line per router."""

from fastapi import APIRouter

from gateway.analytics.endpoints import router as analytics_router
from gateway.audit.endpoints import router as audit_router
from gateway.billing.endpoints import router as billing_router
from gateway.catalog.endpoints import router as catalog_router
from gateway.collection.endpoints import payments_router as invoice_payments_router
from gateway.collection.endpoints import router as collection_router
from gateway.credit_notes.endpoints import router as credit_notes_router
from gateway.customers.endpoints import router as customers_router
from gateway.entitlements.endpoints import router as entitlements_router
from gateway.holds.endpoints import router as holds_router
from gateway.invoices.endpoints import router as invoices_router
from gateway.operations.endpoints import router as operations_router
from gateway.packs.endpoints import router as packs_router
from gateway.payments.endpoints import router as payments_router
from gateway.relay.endpoints import router as relay_router
from gateway.subscriptions.endpoints import router as subscriptions_router
from gateway.usage.endpoints import router as usage_router
from gateway.webhooks.endpoints import router as webhooks_router

router = APIRouter()
router.include_router(operations_router)
router.include_router(usage_router)
router.include_router(holds_router)
router.include_router(audit_router)
router.include_router(webhooks_router)
router.include_router(relay_router)
router.include_router(catalog_router)
router.include_router(packs_router)
router.include_router(customers_router)
router.include_router(subscriptions_router)
router.include_router(invoices_router)
router.include_router(invoice_payments_router)
router.include_router(collection_router)
router.include_router(billing_router)
router.include_router(entitlements_router)
router.include_router(credit_notes_router)
router.include_router(payments_router)
router.include_router(analytics_router)
