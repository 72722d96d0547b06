"""Collecting Lago's invoices through Stripe: charges, payment links, dunning, refunds.

Offers: ``charger`` (start and drive a charge), ``checkout`` (hosted pages), ``dunning``,
``refunds``, ``handlers`` (its webhook handlers, listed in ``gateway.worker``), the jobs
``collector`` and ``reconciler``, ``endpoints``. Decisions in ``service`` and ``states``;
tables ``collections`` and ``refunds`` in ``store``.
"""
