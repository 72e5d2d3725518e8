"""AliceBlue ANT open-api: order-notify feed, Noren webhooks, order book, redirect login (docs/brokers.md §12).

The package imports none of its modules (import them by name, e.g. `app.brokers.aliceblue.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
