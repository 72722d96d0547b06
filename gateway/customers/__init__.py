"""Customers on the Lago-compatible surface, and their link to a Stripe customer."""
