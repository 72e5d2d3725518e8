"""Angel One SmartAPI: unsigned postbacks, the order-status socket, the order book, the TOTP login (docs/brokers.md §9).

The package imports none of its modules (import them by name, e.g. `app.brokers.angel.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
