"""Flattrade and other Noren OMS deployments (Noren `om` keys and the Tiqs shape) (docs/brokers.md §5).

The package imports none of its modules (import them by name, e.g. `app.brokers.flattrade.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
