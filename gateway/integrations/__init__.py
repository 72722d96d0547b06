"""Vendor HTTP, and only that: the Lago and Stripe clients.

Offers: ``lago.client.LagoClient``, ``stripe.client.StripeClient``, ``pooling.SpreadTransport``.
Knows no web framework, database or capability.
"""
