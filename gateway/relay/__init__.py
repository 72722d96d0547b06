"""Relaying webhooks to internal subscribers, signed per Standard Webhooks.

Offers: ``service.enqueue_many``/``enqueue_message`` (in the caller's transaction) and
``service.wake_senders``, ``subscribers`` (endpoints and secrets), ``messages`` (reads,
redelivery, recovery), the ``sender`` and ``retention`` jobs, ``endpoints``, ``cli``
(``gateway relay``). Tables: endpoints, messages, deliveries, attempts (``store``).
"""
