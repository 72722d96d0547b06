"""Usage-billing gateway between product services, a self-hosted Lago and Stripe."""

__version__ = "0.1.0"
