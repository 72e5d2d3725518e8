"""5paisa (Xstream): a polled order book (its one feed connection per token belongs to market data;
docs/brokers.md §15.2).

The package imports none of its modules (import them by name, e.g. `app.brokers.fivepaisa.adapter`): app/config.py
reads the spec while the adapter imports the config.
"""
