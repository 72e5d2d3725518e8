"""Dhan (DhanHQ v2): postbacks, the official order-update WebSocket and the web order feed (docs/brokers.md §4).

The package imports none of its modules (import them by name, e.g. `app.brokers.dhan.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
