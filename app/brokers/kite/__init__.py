"""Zerodha Kite Connect: signed postbacks, the order channel of KiteTicker (docs/brokers.md §3).

The package imports none of its modules (import them by name, e.g. `app.brokers.kite.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
