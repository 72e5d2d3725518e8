"""Groww Trade API: a polled order book (its push transport is undocumented; docs/brokers.md §15.1).

The package imports none of its modules (import them by name, e.g. `app.brokers.groww.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
