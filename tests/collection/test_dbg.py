import traceback
from tests.collection.conftest import Harness
from gateway.collection import handlers

async def test_dbg(harness: Harness) -> None:
    await harness.customer("acme")
    issued = harness.emulator.issue_invoice("acme", 4_250)
    try:
        await handlers.on_invoice_issued(harness.gw.runtime, None, {"invoice": issued})
    except Exception:
        traceback.print_exc()
        raise
