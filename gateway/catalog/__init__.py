"""The catalog as code: plans, metrics, coupons, token packs and costs, applied to Lago.

Offers: ``loader`` (the file, validated), ``planner`` and ``service`` (plan and apply against
Lago), ``schemas.Catalog`` (read by usage rules and token packs), ``cli`` (``gateway catalog``),
``endpoints`` (``GET /gateway/catalog``).
"""
