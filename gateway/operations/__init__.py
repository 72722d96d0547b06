"""Operating the gateway over HTTP: health, readiness, metrics.

Offers: ``endpoints`` (``/healthz``, ``/readyz``, ``/metrics``).
"""
