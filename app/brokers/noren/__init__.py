"""The Noren OMS family (Flattrade, Shoonya, Zebu, Firstock): one adapter, connector, REST client and login, each
broker's differences declared in its spec.py as a `NorenBroker` (docs/brokers.md §5).

The package imports none of its modules (import them by name): app/config.py reads the specs while the adapter
imports the config.
"""
