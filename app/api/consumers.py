"""/api/consumers: list, add, change, remove, rotate the secret, send a test event, replay a window.

The contract is docs/interface.md "Consumers" (shared); the design is docs/consumers.md. Answers hold the
consumer's view (app/consumers/model.py `view`) with its delivery figures; a secret is shown only in the answer
that made it. The environment's consumers (FORWARD_URLS) are listed first and are read-only (409).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app.api.account_input import BadInput as BadBody
from app.api.account_input import decode_body
from app.api.auth import require_admin
from app.api.orders import BadQuery, as_db_time, parse_time
from app.api.responses import error_response
from app.consumers.input import BadInput, consumer_change, new_consumer
from app.consumers.model import HTTP, Consumer
from app.consumers.probe import last_test, request_test
from app.consumers.replay import TooMany, replay
from app.consumers.secrets import SecretUnreadable
from app.consumers.store import ConsumerNotFound, ConsumerStore, ReadOnly, consumer_views, where
from app.crypto import SecretKeyUnavailable

log = logging.getLogger(__name__)

bp = Blueprint("consumers", __name__, url_prefix="/api/consumers")
MAX_ID_LENGTH = 32


@bp.errorhandler(SecretKeyUnavailable)
@bp.errorhandler(SecretUnreadable)
def _key_broken(exc: Exception):
    """FEEDS_SECRET_KEY missing, invalid or changed: no secret can be stored or read (503 saying which)."""
    return error_response(503, str(exc))


@bp.errorhandler(BadInput)
@bp.errorhandler(BadBody)
@bp.errorhandler(BadQuery)
def _bad_input(exc: Exception):
    """A refused body: 400 saying what to fix."""
    return error_response(400, str(exc))


@bp.errorhandler(ReadOnly)
def _read_only(exc: ReadOnly):
    """409: the environment's consumer changes with the environment."""
    return error_response(409, str(exc))


@bp.errorhandler(ConsumerNotFound)
def _missing(exc: ConsumerNotFound):
    """404 naming the id (cut, escaped)."""
    shown = str(exc.args[0] if exc.args else "")[:MAX_ID_LENGTH]
    return error_response(404, f"no consumer {shown!r}: GET /api/consumers lists them")


@bp.get("")
@require_admin
def list_consumers():
    """Every consumer: the environment's (read-only) first, then those added as data."""
    return jsonify(consumers=views(_store().list()))


@bp.post("")
@require_admin
def add_consumer():
    """Add a consumer: 201 its view, plus its secret (http: shown this once)."""
    wanted = new_consumer(_body())
    made, secret = _store().create(**wanted)
    log.info("consumer %s added (%s to %s)", made.id, made.type, where(made))
    shown = views([made])[0]
    if made.type == HTTP:
        shown["secret"] = secret
    return jsonify(shown), 201


@bp.get("/<cid>")
@require_admin
def get_consumer(cid: str):
    """One consumer's view."""
    return jsonify(views([_find(cid)])[0])


@bp.patch("/<cid>")
@require_admin
def change_consumer(cid: str):
    """Change description, filters, enabled or url: 200 the view."""
    store = _store()
    consumer = store.writable(_checked(cid))
    changes = consumer_change(consumer, _body())
    changed = store.update(consumer.id, **changes)
    log.info("consumer %s changed (%s)", changed.id, ", ".join(sorted(changes)))
    return jsonify(views([changed])[0])


@bp.delete("/<cid>")
@require_admin
def remove_consumer(cid: str):
    """Remove a consumer: 204; its pending deliveries end as failed."""
    ended = _store().delete(_checked(cid), _services().redis)
    log.info("consumer %s removed (%d pending deliveries ended as failed)", cid, ended)
    return Response(status=204)


@bp.post("/<cid>/secret")
@require_admin
def rotate_secret(cid: str):
    """A new secret (shown this once); for 24 h deliveries are signed under the old one too."""
    store = _store()
    consumer = store.writable(_checked(cid))
    _no_fields("a new secret is always made here")
    if consumer.type != HTTP:
        return error_response(409, f"only http consumers are signed; {consumer.id} is {consumer.type}")
    secret = store.rotate(consumer.id)
    log.info("consumer %s: secret rotated (the previous one also signs for 24 h)", consumer.id)
    return jsonify(secret=secret)


@bp.post("/<cid>/test")
@require_admin
def send_test(cid: str):
    """One test delivery now (an event with "test": true, never stored): 202."""
    consumer = _find(cid)
    _no_fields("the test event is always the same")
    event = request_test(_services().redis, consumer)
    return jsonify(event_id=event["id"], status="queued"), 202


@bp.get("/<cid>/test")
@require_admin
def test_result(cid: str):
    """The last test delivery's outcome (a day), or 404 when none was sent."""
    consumer = _find(cid)
    result = last_test(_services().redis, consumer.id)
    if result is None:
        return error_response(404, f"no test delivery of {consumer.id} in the last day: POST to this URL sends one")
    return jsonify(result)


@bp.post("/<cid>/replay")
@require_admin
def replay_window(cid: str):
    """Deliver every stored event of [since, until) that passes the filters again, original ids: 202 {"events"}."""
    consumer = _find(cid)
    payload = _body()
    unknown = sorted(set(payload) - {"since", "until"})
    if unknown:
        raise BadInput(f"unknown fields {unknown}; send since and, optionally, until")
    if "since" not in payload:
        raise BadInput('send {"since": iso, "until"?: iso}, e.g. {"since": "2026-12-04T03:45:00Z"}')
    since = parse_time(payload["since"], "since")
    until = parse_time(payload["until"], "until") if payload.get("until") is not None else None
    if until is not None and until <= since:
        raise BadInput("until must be after since")
    services = _services()
    try:
        count = replay(
            services.engine, services.redis, consumer, as_db_time(since), as_db_time(until) if until else None
        )
    except TooMany as exc:
        raise BadInput(str(exc)) from None
    log.info("consumer %s: %d events replayed", consumer.id, count)
    return jsonify(events=count), 202


# Helpers


def views(found: list[Consumer]) -> list[dict[str, Any]]:
    """The consumers' views with their delivery figures."""
    services = _services()
    return consumer_views(services.engine, found, len(services.config.forward_retry_schedule) + 1)


def _body() -> dict[str, Any]:
    """The request's JSON object (400 otherwise)."""
    return decode_body(request.get_data(cache=False))


def _no_fields(why: str) -> None:
    """An empty body or {}; any field is refused (400) rather than ignored."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return
    unknown = sorted(decode_body(raw))
    if unknown:
        raise BadInput(f"unknown fields {unknown}; this takes no fields ({why}): send {{}} or no body")


def _checked(cid: str) -> str:
    """The id when it can name a consumer; ConsumerNotFound (404) otherwise."""
    if not (0 < len(cid) <= MAX_ID_LENGTH and cid.isascii() and cid.isprintable()):
        raise ConsumerNotFound(cid)
    return cid


def _find(cid: str) -> Consumer:
    """The consumer (404 when none has that id)."""
    return _store().get(_checked(cid))


def _store() -> ConsumerStore:
    """The consumers of this app's services."""
    services = _services()
    return ConsumerStore(services.config, services.engine, services.redis)


def _services():
    """This app's services."""
    return current_app.extensions["orderhook"]
