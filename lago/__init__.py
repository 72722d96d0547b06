"""The Lago side of the billing gateway: an in-memory Lago emulator for tests and local runs."""
