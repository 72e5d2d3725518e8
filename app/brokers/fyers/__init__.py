"""Fyers API v3: its webhook (postback), order socket, order book and redirect login (docs/brokers.md §11).

The package imports none of its modules (import them by name, e.g. `app.brokers.fyers.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
