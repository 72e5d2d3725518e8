"""Kotak Neo: the order & position stream, the order book and the TOTP + MPIN login (docs/brokers.md §13).

The package imports none of its modules (import them by name, e.g. `app.brokers.kotak.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
