"""Subscriptions on the Lago-compatible surface: create, plan changes, termination."""
