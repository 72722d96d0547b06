"""API keys and their scopes.

Offers: ``service.KeyVerifier`` (cached key checks), ``service.authenticate`` and
``service.authorize`` (behind ``gateway.http.auth``'s dependencies), ``service.Scope``,
``service.Principal``; ``cli`` (``gateway keys``). Tables: ``api_keys`` (``store``).
"""
