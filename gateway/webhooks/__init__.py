"""The public door for Lago's and Stripe's webhooks: verified, stored once, relayed.

Offers: ``service`` (verify and store), ``verification`` (signatures), ``handlers`` (the
handler table type), the ``processor`` and ``retention`` jobs, ``registration`` (in Lago),
``endpoints``, ``cli`` (``gateway webhooks``). Tables: ``inbound_webhooks`` (``store``).
"""
