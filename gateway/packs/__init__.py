"""Token packs and promo codes, and the answer to "may this customer generate?".

Offers: ``service`` (buy a pack, apply a code), ``balance`` (the balance answer),
``settlement`` (bonuses), ``handlers`` (its webhook handlers, listed in ``gateway.worker``), the
``reconciler`` job, ``endpoints``. Tables: ``pack_purchases`` (``store``).
"""
