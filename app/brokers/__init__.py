"""Brokers, one package each (app/brokers/<name>/: spec, adapter, feed, REST client).

The list of brokers and everything derived from it is registry.py; the classes the specs name are
loaded by loader.py; what never leaves the service is redaction.py. The package itself imports nothing,
so importing any of them costs only what that module needs.
"""
