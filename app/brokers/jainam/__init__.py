"""Jainam protrade (ODIN/OMEx order messages): webhooks and the order status feed (docs/brokers.md §6).

The package imports none of its modules (import them by name, e.g. `app.brokers.jainam.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
