"""Credit notes as Lago holds them: listed, estimated and fetched; created, updated, voided
and downloaded with an audit row each (``credit_notes.<action>``, with its outcome).

A credit note the gateway creates is refunded on Stripe at once (collection's claim row,
unique on the credit note, so Lago's ``credit_note.created`` webhook finds it done), and one
on a token pack's invoice takes the pack's unspent tokens back (``gateway.packs.clawback``).
Either failing leaves the credit note made: the webhook and the collector finish the job.
"""

from __future__ import annotations

from typing import Any

from gateway.billing.passthrough import Params, Write, read, refuse, segment, write
from gateway.billing.payloads import LagoInput, check, lago_uuid
from gateway.collection import refunds
from gateway.credit_notes.schemas import (
    CreditNoteChanges,
    CreditNoteEstimateInput,
    CreditNoteInput,
)
from gateway.errors import GatewayError, from_lago
from gateway.integrations.lago.client import LagoError
from gateway.logging import get_logger
from gateway.packs import clawback, settlement
from gateway.runtime import Runtime

log = get_logger(__name__)
_AMOUNTS = ("credit_amount_cents", "refund_amount_cents", "offset_amount_cents", "reason")


class CreditNotes:
    """Lago's credit notes, passed through with validation and audit."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._database = runtime.database
        self._lago = runtime.lago

    async def _checked(
        self, change: Write, model: type[LagoInput] | None, params: dict[str, Any], lago_id: str
    ) -> None:
        """422 (or 404 for an id that is no UUID) before Lago is asked, audited as refused."""
        try:
            if lago_id:
                lago_uuid(lago_id, "credit_note")
            if model is not None:
                check(model, params)
        except GatewayError as exc:
            raise await refuse(self._database, change, exc) from exc

    async def listing(self, params: Params, external_customer_id: str | None = None) -> Any:
        """One page of credit notes (Lago's filters passed through), of one customer or all."""
        if external_customer_id is None:
            return await read(self._lago, "/credit_notes", params)
        path = f"/customers/{segment(external_customer_id)}/credit_notes"
        return await read(self._lago, path, params)

    async def get(self, lago_id: str) -> dict[str, Any]:
        """One credit note with its items, taxes and customer."""
        return await read(self._lago, f"/credit_notes/{segment(lago_uuid(lago_id, 'credit_note'))}")

    async def estimate(self, params: dict[str, Any]) -> dict[str, Any]:
        """What a credit note of these items could credit and refund (nothing is stored)."""
        check(CreditNoteEstimateInput, params)
        try:
            return await self._lago.call(
                "POST", "/credit_notes/estimate", json={"credit_note": params}
            )
        except LagoError as exc:
            raise from_lago(exc) from exc

    async def create(self, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Create the credit note in Lago, then refund it and take back a pack's tokens."""
        detail = {k: params[k] for k in _AMOUNTS if k in params}
        change = Write(actor, "credit_notes.create", _text(params.get("invoice_id")), detail)
        await self._checked(change, CreditNoteInput, params, "")
        answer = await write(
            self._database, self._lago, change, "POST", "/credit_notes",
            json={"credit_note": params},
        )  # fmt: skip
        await self.follow_up(answer.get("credit_note") or {}, actor)
        return answer

    async def follow_up(self, note: dict[str, Any], actor: str) -> None:
        """The refund on Stripe and the pack clawback; a failure is left to the webhook."""
        if not note.get("lago_id"):
            return
        try:
            await refunds.refund_credit_note(self._runtime, note, actor=actor)
        except Exception:
            log.warning("credit_notes.refund_deferred", credit_note_id=note["lago_id"])
        try:
            lease = settlement.lease_seconds(self._runtime.settings)
            await clawback.claw_back(self._database, self._lago, note, actor=actor, lease=lease)
        except Exception:
            log.warning("credit_notes.clawback_deferred", credit_note_id=note["lago_id"])

    async def update(self, lago_id: str, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Set ``refund_status`` or merge ``metadata``."""
        detail = {"refund_status": params["refund_status"]} if "refund_status" in params else None
        change = Write(actor, "credit_notes.update", lago_id, detail)
        await self._checked(change, CreditNoteChanges, params, lago_id)
        path = f"/credit_notes/{segment(lago_id)}"
        return await write(
            self._database, self._lago, change, "PUT", path, json={"credit_note": params}
        )

    async def void(self, lago_id: str, actor: str) -> dict[str, Any]:
        """Void what is left of the credit note's credit."""
        change = Write(actor, "credit_notes.void", lago_id)
        await self._checked(change, None, {}, lago_id)
        path = f"/credit_notes/{segment(lago_id)}/void"
        return await write(self._database, self._lago, change, "PUT", path)

    async def download(self, lago_id: str, actor: str) -> dict[str, Any]:
        """The credit note with its ``file_url``, or ``{}`` while Lago makes the PDF.

        Lago routes ``download`` and ``download_pdf`` to the same action
        (config/routes.rb); its OpenAPI spec names only ``download``, so that is what the
        gateway calls for both of its routes."""
        change = Write(actor, "credit_notes.download", lago_id)
        await self._checked(change, None, {}, lago_id)
        path = f"/credit_notes/{segment(lago_id)}/download"
        return await write(self._database, self._lago, change, "POST", path)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
