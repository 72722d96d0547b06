"""Lago's payments and payment methods, read through the gateway."""
