"""Symphony XTS interactive (IIFL XTS, Jainam XTS, 5paisa XTS, Compositedge…): socket.io order feed, REST book, login.

The package imports none of its modules (import them by name, e.g. `app.brokers.xts.adapter`): app/config.py
reads the spec while the adapter imports the config (docs/brokers.md §14).
"""
