"""The API's table of contents: one line per router."""

from fastapi import APIRouter

from gateway.audit.endpoints import router as audit_router
from gateway.operations.endpoints import router as operations_router
from gateway.usage.endpoints import router as usage_router

router = APIRouter()
router.include_router(operations_router)
router.include_router(usage_router)
router.include_router(audit_router)
