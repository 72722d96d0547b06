"""Invoices as Lago holds them: lists, actions, PDFs and the CSV export.

Offers: ``service`` (list, fetch, act, audited), ``export`` (CSV), ``files`` (PDF streaming),
``money`` (minor to major units), ``schemas.InvoiceFilters``, ``endpoints``.
"""
