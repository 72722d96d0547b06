"""Lago's credit notes through the gateway: created, estimated, listed, voided (audited)."""
