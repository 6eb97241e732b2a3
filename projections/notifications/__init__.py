"""Notifications: webhooks and e-mail made from the store's log, exactly once in effect.

``tables`` defines the tables (and is their reference), ``outbox`` is the follower that makes
messages, ``subscriptions`` and ``deliveries`` are what the webhook API reads and writes.
"""
