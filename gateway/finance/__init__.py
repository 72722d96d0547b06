"""The finance pages (``/finance``): invoices, totals, collection, for people.

Offers: ``app`` (the mounted sub-application), ``service`` (what the pages show).
"""
