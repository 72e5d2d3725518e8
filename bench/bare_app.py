"""The ingest benchmark's baseline: read the body, answer 202 (the server's own ceiling)."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/postbacks/kite")
def receive():
    """Read the whole body, as the real handler does, and answer like it."""
    request.get_data(cache=False)
    return {"status": "accepted"}, 202
