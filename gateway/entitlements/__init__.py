"""Lago's features and entitlements, passed through (reads; subscription overrides audited)."""
