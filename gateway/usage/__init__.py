"""Metered usage: accepted durably, forwarded to Lago exactly once.

Offers: ``service.UsageIngest`` (accept events), ``schemas.EventIn`` (the event contract),
``parsing`` (the hot-path reader), ``outbox.OutboxWriter`` (group commits), ``lookups`` (what
Lago knows, cached), the ``forwarder`` and ``retention`` jobs, ``endpoints`` (Lago's
``/api/v1/events``, fast routes included), ``cli`` (``gateway outbox``). Tables:
``usage_events`` (``store``).
"""
