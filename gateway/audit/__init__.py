"""The append-only audit log.

Offers: ``service.entry``/``record``/``record_many`` (written in the caller's transaction),
``store.bulk_insert_sql`` (for one-statement group commits), ``service.search``;
``endpoints`` (``GET /gateway/audit``). Tables: ``audit_entries`` (``store``).
"""
