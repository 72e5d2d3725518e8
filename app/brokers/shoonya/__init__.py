"""Shoonya (Noren OMS): its declaration in spec.py, the Noren family's classes (app/brokers/noren/) for the rest
(docs/brokers.md §5).

The package imports none of its modules (import them by name, e.g. `app.brokers.shoonya.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
