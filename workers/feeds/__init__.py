"""The `feeds` process: broker order-update WebSockets into the same dedup + queue as postbacks.

`python -m workers.feeds` runs the connectors named in FEEDS (workers/feeds/runner.py). Kept light:
the web process imports workers.feeds.status to show each connector's state.
"""
