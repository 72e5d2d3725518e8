"""The `feeds` process: broker order-update WebSockets into the same dedup + queue as postbacks.

`python -m workers.feeds` runs the connectors named in FEEDS (workers/feeds/runner.py). The connectors
themselves are protocol code and live with their brokers (app/brokers/<name>/feed.py, on the shared
app/brokers/feed.py); their published state is app/brokers/feed_status.py, which the web process reads.
"""
