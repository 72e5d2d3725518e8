"""Upstox (API v2): unsigned webhooks, the Portfolio Stream Feed, the order book, the OAuth2 login (brokers.md §10).

The package imports none of its modules (import them by name, e.g. `app.brokers.upstox.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
