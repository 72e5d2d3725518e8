"""GET /openapi.json: the maintained OpenAPI 3.1 description of every endpoint of the contract (docs/api.md).

Written by hand as a Python dict (one postback operation per broker in app/brokers/registry.py) so it reads
as documentation and changes with the code in one review;
tests/unit/test_openapi.py runs schemathesis over the WSGI app against it (every answer must conform, no 5xx).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.brokers.registry import BROKER_NAMES, SPECS
from app.brokers.spec import PATH_TOKEN
from app.reconcile.clients import CLIENTS

bp = Blueprint("openapi", __name__)

VERSION = "1.0.0"
BROKERS = list(BROKER_NAMES)
STATUSES = ["PENDING", "OPEN", "TRIGGER_PENDING", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "REJECTED", "EXPIRED"]
ADMIN = [{"bearer": []}]
#: Admin text input is printable ASCII (docs/api.md), at most 512 characters.
TEXT = {"type": "string", "pattern": "^[ -~]{0,512}$"}


def _ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    """A refusal: always `{"error": "..."}` saying what to fix."""
    return _json(_ref("Error"), description)


def _errors(*codes: int) -> dict[str, Any]:
    """The usual refusals by status code."""
    text = {
        400: "malformed or invalid request; `error` says what to fix",
        401: "missing or wrong bearer token (Authorization: Bearer <ADMIN_TOKEN>)",
        403: "wrong checksum, or a state-changing request from another site",
        404: "not found",
        405: "method not allowed",
        409: "conflict with the current state; `error` says what to do first",
        413: "body over the 64 KiB limit",
        415: "unsupported Content-Encoding",
        429: "too many failed attempts from this client; retry later",
        503: "a dependency (Redis or the database) is not answering; retry shortly",
    }
    return {str(code): _error(text[code]) for code in codes}


ADMIN_ERRORS = (400, 401, 404, 405, 429, 503)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


LIMIT = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 999999999, "default": 100},
    "page size (ASCII digits; above 1000 served as 1000)",
)
CURSOR = _query("cursor", TEXT, "opaque: `next_cursor` of the previous page, passed back unchanged")
SINCE_ORDERS = _query("since", {"type": "string", "format": "date-time"}, "only orders updated at or after (UTC)")
SINCE_DELIVERIES = _query("since", {"type": "string", "format": "date-time"}, "only deliveries created at or after")
TOKEN = _path("token", {"type": "string"}, "POSTBACK_TOKEN: the secret path segment for brokers that do not sign")

POSTBACK_BODY = {
    "required": True,
    "description": "the broker's order update as it sends it (JSON; at most 64 KiB)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def _postback(summary: str, *, path_token: bool) -> dict[str, Any]:
    """A broker postback operation."""
    refusals = (400, 404, 405, 413, 415, 429, 503) + (() if path_token else (401, 403))
    return {
        "post": {
            "tags": ["postbacks"],
            "summary": summary,
            "parameters": [TOKEN] if path_token else [],
            "requestBody": POSTBACK_BODY,
            "responses": {
                "202": _json(_ref("PostbackAck"), "a new update, kept durably for processing"),
                "200": _json(_ref("PostbackAck"), "a duplicate of an update already taken"),
                **_errors(*refusals),
            },
        }
    }


def _postback_paths() -> dict[str, Any]:
    """One operation per broker that takes postbacks, from the registry: a new broker is described at once."""
    return {
        spec.postback_path("{token}"): _postback(spec.postback_summary, path_token=spec.postback == PATH_TOKEN)
        for spec in SPECS
        if spec.postback
    }


ACCOUNT_ID = _path("account_id", {"type": "string", "maxLength": 40}, "the account's id (`acc_…`, or `env-<broker>`)")
ACCOUNT_BROKERS = [spec.name for spec in SPECS if spec.accounts is not None]


def _body(schema: str) -> dict[str, Any]:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _account_operation(summary: str, ok: str, answer: dict[str, Any], *refusals: int, **extra: Any) -> dict[str, Any]:
    """One /api/accounts operation: its answer `ok` and refusals (503 also for a broken FEEDS_SECRET_KEY)."""
    return {
        "tags": ["accounts"],
        "summary": summary,
        "security": ADMIN,
        **extra,
        "responses": {ok: answer, **_errors(*ADMIN_ERRORS, *refusals)},
    }


ACCOUNT_PATHS: dict[str, Any] = {
    "/api/brokers": {
        "get": _account_operation(
            "what an account of each broker needs: login kind, postback kind, credentials",
            "200",
            _json(_ref("BrokerList"), "every broker that takes accounts"),
        )
    },
    "/api/accounts": {
        "get": _account_operation(
            "every account, the environment's (read-only) first; never a secret",
            "200",
            _json(_ref("AccountList"), "the accounts"),
        ),
        "post": _account_operation(
            "add an account with the credentials its broker needs (`access_token` among them is the day's session)",
            "201",
            _json(_ref("Account"), "added"),
            403,
            409,
            413,
            415,
            requestBody=_body("NewAccount"),
        ),
    },
    "/api/accounts/{account_id}": {
        "get": _account_operation("one account", "200", _json(_ref("Account"), "the account"), parameters=[ACCOUNT_ID]),
        "patch": _account_operation(
            "change label, credentials (merged key by key; null removes an optional one), feed, reconcile",
            "200",
            _json(_ref("Account"), "changed"),
            403,
            409,
            413,
            415,
            parameters=[ACCOUNT_ID],
            requestBody=_body("AccountChange"),
        ),
        "delete": {
            **_account_operation(
                "remove an account (its feed closes; its orders and events stay)",
                "204",
                {"description": "removed"},
                403,
                409,
                parameters=[ACCOUNT_ID],
            )
        },
    },
    "/api/accounts/{account_id}/session": {
        "put": _account_operation(
            "paste the day's token (any broker): the account's session from now; its feed reconnects, it is reconciled",
            "200",
            _json(_ref("Account"), "the new session"),
            403,
            409,
            413,
            415,
            parameters=[ACCOUNT_ID],
            requestBody=_body("NewSession"),
        )
    },
    "/api/accounts/{account_id}/reconcile": {
        "post": _account_operation(
            "reconcile this account now",
            "202",
            _json(_ref("ReconcileQueued"), "queued"),
            403,
            409,
            parameters=[ACCOUNT_ID],
        )
    },
    "/api/accounts/{account_id}/postback-token": {
        "post": _account_operation(
            "a postback URL of this account's own (unsigned brokers): shown this once, a new call rotates it",
            "200",
            _json(_ref("PostbackUrl"), "the URL to register with the broker"),
            403,
            409,
            parameters=[ACCOUNT_ID],
        )
    },
}

CONSUMER_ID = _path(
    "consumer_id", {"type": "string", "maxLength": 32}, "the consumer's id (`con_…`, or `c_…` for FORWARD_URLS)"
)


def _consumer_operation(summary: str, ok: str, answer: dict[str, Any], *refusals: int, **extra: Any) -> dict[str, Any]:
    """One /api/consumers operation: its answer `ok` and refusals (503 also for a broken FEEDS_SECRET_KEY)."""
    return {
        "tags": ["consumers"],
        "summary": summary,
        "security": ADMIN,
        **extra,
        "responses": {ok: answer, **_errors(*ADMIN_ERRORS, *refusals)},
    }


CONSUMER_PATHS: dict[str, Any] = {
    "/api/consumers": {
        "get": _consumer_operation(
            "every consumer, the environment's (FORWARD_URLS, read-only) first; never a secret",
            "200",
            _json(_ref("ConsumerList"), "the consumers"),
        ),
        "post": _consumer_operation(
            "add a consumer (http, rq or redis_stream) with filters; an http consumer's secret is shown this once",
            "201",
            _json(_ref("NewConsumerAnswer"), "added"),
            403,
            413,
            415,
            requestBody=_body("NewConsumer"),
        ),
    },
    "/api/consumers/{consumer_id}": {
        "get": _consumer_operation(
            "one consumer", "200", _json(_ref("Consumer"), "the consumer"), parameters=[CONSUMER_ID]
        ),
        "patch": _consumer_operation(
            "change description, filters, enabled or (http) url",
            "200",
            _json(_ref("Consumer"), "changed"),
            403,
            409,
            413,
            415,
            parameters=[CONSUMER_ID],
            requestBody=_body("ConsumerChange"),
        ),
        "delete": _consumer_operation(
            "remove a consumer: its pending deliveries end as failed",
            "204",
            {"description": "removed"},
            403,
            409,
            parameters=[CONSUMER_ID],
        ),
    },
    "/api/consumers/{consumer_id}/secret": {
        "post": _consumer_operation(
            "a new secret (shown this once); for 24 h deliveries are signed under the old one too",
            "200",
            _json(_ref("ConsumerSecret"), "the new secret"),
            403,
            409,
            parameters=[CONSUMER_ID],
        )
    },
    "/api/consumers/{consumer_id}/test": {
        "post": _consumer_operation(
            'one test delivery now (an event with "test": true, never stored as an order)',
            "202",
            _json(_ref("ConsumerTestQueued"), "queued for a worker"),
            403,
            parameters=[CONSUMER_ID],
        ),
        "get": _consumer_operation(
            "the last test delivery's outcome (kept a day)",
            "200",
            _json(_ref("ConsumerTestResult"), "the outcome"),
            parameters=[CONSUMER_ID],
        ),
    },
    "/api/consumers/{consumer_id}/replay": {
        "post": _consumer_operation(
            "deliver every stored event of [since, until) that passes the filters again, with its original webhook-id",
            "202",
            _json(_ref("ReplayQueued"), "how many events"),
            403,
            413,
            415,
            parameters=[CONSUMER_ID],
            requestBody=_body("Replay"),
        )
    },
}

PATHS: dict[str, Any] = {
    **_postback_paths(),
    "/healthz": {
        "get": {
            "tags": ["operations"],
            "summary": "liveness: 200 while the process runs",
            "responses": {"200": _json(_ref("Health"), "the process runs"), **_errors(405)},
        }
    },
    "/readyz": {
        "get": {
            "tags": ["operations"],
            "summary": "readiness: Redis and the database answer",
            "responses": {
                "200": _json(_ref("Readiness"), "ready"),
                "503": _json(_ref("Readiness"), "not ready; `checks` says which dependency"),
                **_errors(405),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["operations"],
            "summary": "Prometheus text, counted across all web workers",
            "security": ADMIN,
            "responses": {
                "200": {
                    "description": "Prometheus exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401, 405, 429, 503),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "tags": ["operations"],
            "summary": "this document (no token needed)",
            "responses": {"200": _json({"type": "object"}, "the OpenAPI description"), **_errors(405)},
        }
    },
    "/api/orders": {
        "get": {
            "tags": ["orders"],
            "summary": "current order states, most recently updated first",
            "security": ADMIN,
            "parameters": [
                _query("broker", {"type": "string", "enum": BROKERS}, "only this broker"),
                _query("account_id", TEXT, "only this account"),
                _query("status", {"type": "string", "enum": STATUSES}, "only this normalized status"),
                SINCE_ORDERS,
                LIMIT,
                CURSOR,
            ],
            "responses": {"200": _json(_ref("OrderList"), "a page of orders"), **_errors(*ADMIN_ERRORS)},
        }
    },
    "/api/orders/{broker}/{order_id}": {
        "get": {
            "tags": ["orders"],
            "summary": "one order's state and a page of its events, read in one snapshot",
            "security": ADMIN,
            "parameters": [
                _path("broker", {"type": "string", "enum": BROKERS}, "the broker"),
                _path("order_id", {"type": "string"}, "the broker's order id"),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 999999999, "default": 100},
                    "events per page (above 1000 served as 1000)",
                ),
                _query(
                    "after",
                    {"type": "integer", "minimum": 0, "maximum": 2147483647, "default": 0},
                    "events after this sequence (`events_next_after` of the previous page)",
                ),
                _query(
                    "double_encoded",
                    {"type": "string", "enum": ["1"]},
                    "1: the order id in the path is percent-encoded twice (for `.`, `..` and ids starting with `/`)",
                ),
            ],
            "responses": {"200": _json(_ref("OrderDetail"), "the order"), **_errors(*ADMIN_ERRORS)},
        }
    },
    "/api/deliveries": {
        "get": {
            "tags": ["deliveries"],
            "summary": "the forward log, newest first, with every attempt",
            "security": ADMIN,
            "parameters": [
                _query("status", {"type": "string", "enum": ["pending", "delivered", "failed"]}, "by state"),
                _query("consumer", TEXT, "only deliveries to this consumer URL"),
                _query("event_id", TEXT, "only deliveries of this event"),
                _query("order", {**TEXT, "pattern": "^[a-z]+/[ -~]{1,500}$"}, "<broker>/<order_id>: one order's"),
                SINCE_DELIVERIES,
                LIMIT,
                CURSOR,
            ],
            "responses": {"200": _json(_ref("DeliveryList"), "a page of deliveries"), **_errors(*ADMIN_ERRORS)},
        }
    },
    "/api/deliveries/{delivery_id}": {
        "get": {
            "tags": ["deliveries"],
            "summary": "one delivery and its attempts",
            "security": ADMIN,
            "parameters": [_path("delivery_id", {"type": "integer", "minimum": 1}, "ASCII digits only")],
            "responses": {"200": _json(_ref("Delivery"), "the delivery"), **_errors(*ADMIN_ERRORS)},
        }
    },
    "/api/deliveries/{delivery_id}/retry": {
        "post": {
            "tags": ["deliveries"],
            "summary": "redrive one dead-lettered delivery",
            "security": ADMIN,
            "parameters": [_path("delivery_id", {"type": "integer", "minimum": 1}, "ASCII digits only")],
            "responses": {
                "202": _json(_ref("RetryAccepted"), "pending again, due now"),
                **_errors(*ADMIN_ERRORS, 403, 409),
            },
        }
    },
    "/api/deliveries/redrive": {
        "post": {
            "tags": ["deliveries"],
            "summary": "redrive the failed deliveries of a consumer and/or a time range (dry_run counts only)",
            "security": ADMIN,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RedriveRequest")}}},
            "responses": {
                "200": _json(_ref("RedriveResult"), "dry run: how many would be redriven"),
                "202": _json(_ref("RedriveResult"), "redriven: how many"),
                **_errors(*ADMIN_ERRORS, 403, 409, 415),
            },
        }
    },
    "/api/feeds": {
        "get": {
            "tags": ["feeds"],
            "summary": "each WebSocket connector's state",
            "security": ADMIN,
            "responses": {"200": _json(_ref("FeedList"), "the connectors in FEEDS"), **_errors(*ADMIN_ERRORS)},
        }
    },
    "/api/feeds/dhan-web/login-frame": {
        "put": {
            "tags": ["feeds"],
            "summary": "store the Dhan web login frame (base64 text, padded or not); encrypted, never read back",
            "security": ADMIN,
            "requestBody": {
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "responses": {
                "201": _json(_ref("LoginFrameInfo"), "stored"),
                "200": _json(_ref("LoginFrameInfo"), "replaced the stored frame"),
                **_errors(*ADMIN_ERRORS, 403, 413),
            },
        },
        "get": {
            "tags": ["feeds"],
            "summary": "the stored frame's size and time only",
            "security": ADMIN,
            "responses": {"200": _json(_ref("LoginFrameInfo"), "a frame is stored"), **_errors(*ADMIN_ERRORS, 409)},
        },
    },
    "/api/reconcile": {
        "get": {
            "tags": ["reconcile"],
            "summary": "each broker's last reconciliation: when, orders seen, updates found, last error",
            "security": ADMIN,
            "responses": {
                "200": _json({"type": "object"}, "per-broker reconciliation state"),
                **_errors(*ADMIN_ERRORS),
            },
        },
        "post": {
            "tags": ["reconcile"],
            "summary": "reconcile now against the brokers' REST order books",
            "security": ADMIN,
            "parameters": [_query("broker", {"type": "string", "enum": list(CLIENTS)}, "only this broker")],
            "responses": {"202": _json({"type": "object"}, "queued"), **_errors(*ADMIN_ERRORS, 403, 409)},
        },
    },
    **ACCOUNT_PATHS,
    **CONSUMER_PATHS,
}

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what went wrong and what to fix"}},
    },
    "PostbackAck": {
        "type": "object",
        "required": ["status", "id"],
        "properties": {"status": {"enum": ["accepted", "duplicate"]}, "id": {"type": "string"}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string"},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "OrderState": {
        "type": "object",
        "required": ["broker", "order_id", "status", "event_count"],
        "properties": {
            "broker": {"type": "string"},
            "order_id": {"type": "string"},
            "account_id": NULLABLE_STRING,
            "status": {"type": "string", "enum": STATUSES},
            "broker_status": NULLABLE_STRING,
            "quantity": NULLABLE_INTEGER,
            "filled_quantity": {"type": "integer"},
            "average_price": NULLABLE_NUMBER,
            "event_count": {"type": "integer", "minimum": 1},
            "updated_at": NULLABLE_STRING,
        },
    },
    "Event": {
        "type": "object",
        "description": "the normalized order event as forwarded (docs/interface.md); `raw` never holds a Kite checksum",
        "required": ["id", "broker", "source", "order_id", "status", "sequence", "received_at"],
        "properties": {
            "id": {"type": "string"},
            "broker": {"type": "string"},
            "source": {"type": "string", "enum": ["postback", "websocket", "reconcile"]},
            "order_id": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "sequence": {"type": "integer", "minimum": 1},
            "received_at": {"type": "string"},
            "raw": {},
        },
    },
    "OrderList": {
        "type": "object",
        "required": ["orders", "count", "next_cursor"],
        "properties": {
            "orders": {"type": "array", "items": _ref("OrderState")},
            "count": {"type": "integer", "minimum": 0},
            "next_cursor": {**NULLABLE_STRING, "description": "pass as `cursor` for the next page; null at the end"},
        },
    },
    "OrderDetail": {
        "allOf": [
            _ref("OrderState"),
            {
                "type": "object",
                "required": ["events", "events_next_after"],
                "properties": {
                    "events": {"type": "array", "items": _ref("Event")},
                    "events_next_after": {
                        **NULLABLE_INTEGER,
                        "description": "pass as `after` for the next page of events; null at the end",
                    },
                },
            },
        ]
    },
    "Attempt": {
        "type": "object",
        "required": ["attempt", "attempted_at"],
        "properties": {
            "attempt": {"type": "integer"},
            "attempted_at": {"type": "string"},
            "status_code": NULLABLE_INTEGER,
            "latency_ms": NULLABLE_NUMBER,
            "error": NULLABLE_STRING,
        },
    },
    "Delivery": {
        "type": "object",
        "required": ["id", "event_id", "consumer", "status", "attempts", "created_at", "attempt_log"],
        "properties": {
            "id": {"type": "integer"},
            "event_id": {"type": "string"},
            "consumer": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": {"type": "string"},
            "updated_at": NULLABLE_STRING,
            "next_attempt_at": NULLABLE_STRING,
            "delivered_at": NULLABLE_STRING,
            "last_status_code": NULLABLE_INTEGER,
            "last_error": NULLABLE_STRING,
            "attempt_log": {"type": "array", "items": _ref("Attempt")},
        },
    },
    "DeliveryList": {
        "type": "object",
        "required": ["deliveries", "count", "next_cursor"],
        "properties": {
            "deliveries": {"type": "array", "items": _ref("Delivery")},
            "count": {"type": "integer", "minimum": 0},
            "next_cursor": NULLABLE_STRING,
        },
    },
    "RetryAccepted": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "integer"}, "status": {"const": "pending"}},
    },
    "RedriveRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "consumer and/or since are required",
        "properties": {
            "consumer": {"type": "string", "description": "a consumer URL from FORWARD_URLS"},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "dry_run": {"type": "boolean", "default": False},
        },
    },
    "RedriveResult": {
        "type": "object",
        "required": ["count", "dry_run"],
        "properties": {"count": {"type": "integer", "minimum": 0}, "dry_run": {"type": "boolean"}},
    },
    "Feed": {
        "type": "object",
        "required": ["name", "state", "connected"],
        "properties": {
            "name": {"type": "string"},
            "state": {"type": "string"},
            "connected": {"type": "boolean"},
            "last_message_at": NULLABLE_STRING,
            "reconnects": {"type": "integer"},
            "last_error": NULLABLE_STRING,
            "login_frame_stored": {"type": "boolean"},
        },
    },
    "FeedList": {
        "type": "object",
        "required": ["feeds", "count"],
        "properties": {"feeds": {"type": "array", "items": _ref("Feed")}, "count": {"type": "integer"}},
    },
    "Credential": {
        "type": "object",
        "required": ["name", "secret", "required", "doc"],
        "properties": {
            "name": {"type": "string"},
            "secret": {"type": "boolean"},
            "required": {"type": "boolean"},
            "doc": {"type": "string"},
        },
    },
    "Broker": {
        "type": "object",
        "required": ["name", "login", "postback", "account_id_required", "credentials"],
        "properties": {
            "name": {"type": "string"},
            "login": {"enum": ["redirect", "totp", "paste"]},
            "postback": {"enum": ["signed", "path_token", None]},
            "account_id_required": {"type": "boolean"},
            "credentials": {"type": "array", "items": _ref("Credential")},
            "polled_seconds": NULLABLE_NUMBER,
        },
    },
    "BrokerList": {
        "type": "object",
        "required": ["brokers"],
        "properties": {"brokers": {"type": "array", "items": _ref("Broker")}},
    },
    "AccountSession": {
        "type": "object",
        "required": ["state", "logged_in_at", "expires_at", "login"],
        "properties": {
            "state": {"enum": ["active", "expired", "refused", "missing"]},
            "logged_in_at": NULLABLE_STRING,
            "expires_at": NULLABLE_STRING,
            "login": {"enum": ["redirect", "totp", "paste", None]},
        },
    },
    "Account": {
        "type": "object",
        "description": 'an account as shown: never a credential or token (docs/interface.md "Accounts")',
        "required": [
            "id",
            "broker",
            "account_id",
            "label",
            "source",
            "feed",
            "reconcile",
            "session",
            "feed_state",
            "last_message_at",
            "last_reconcile",
            "last_error",
        ],
        "properties": {
            "id": {"type": "string"},
            "broker": {"type": "string"},
            "account_id": {"type": "string"},
            "label": {"type": "string"},
            "source": {"enum": ["api", "environment"]},
            "feed": {"type": "boolean"},
            "reconcile": {"type": "boolean"},
            "session": _ref("AccountSession"),
            "credentials_set": {"type": "array", "items": {"type": "string"}},
            "postback_token": {"type": "boolean"},
            "feed_state": {**NULLABLE_STRING, "description": "the word GET /api/feeds uses (or `stale`)"},
            "feed_connected": {"type": ["boolean", "null"]},
            "last_message_at": NULLABLE_STRING,
            "last_reconcile": {"type": ["object", "null"]},
            "last_error": NULLABLE_STRING,
            "last_error_at": NULLABLE_STRING,
            "read_only": {"type": "boolean"},
            "created_at": NULLABLE_STRING,
        },
    },
    "AccountList": {
        "type": "object",
        "required": ["accounts"],
        "properties": {"accounts": {"type": "array", "items": _ref("Account")}},
    },
    "NewAccount": {
        "type": "object",
        "additionalProperties": False,
        "required": ["broker"],
        "description": "account_id is needed unless the broker's login names it (Kite); credentials: GET /api/brokers",
        "properties": {
            "broker": {"type": "string", "enum": ACCOUNT_BROKERS},
            "account_id": {"type": "string", "maxLength": 128, "pattern": "^[!-~]*$"},
            "label": {"type": "string", "maxLength": 200},
            "credentials": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4096}},
            "feed": {"type": "boolean", "default": True},
            "reconcile": {"type": "boolean", "default": True},
        },
    },
    "AccountChange": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "label": {"type": "string", "maxLength": 200},
            "credentials": {
                "type": "object",
                "additionalProperties": {"type": ["string", "null"], "maxLength": 4096},
            },
            "feed": {"type": "boolean"},
            "reconcile": {"type": "boolean"},
        },
    },
    "NewSession": {
        "type": "object",
        "additionalProperties": False,
        "required": ["access_token"],
        "properties": {
            "access_token": {"type": "string", "minLength": 1, "maxLength": 4096},
            "expires_at": {"type": "string", "format": "date-time", "description": "no zone = UTC; in the future"},
        },
    },
    "ReconcileQueued": {
        "type": "object",
        "required": ["requested", "status"],
        "properties": {"requested": {"type": "string"}, "status": {"const": "queued"}},
    },
    "PostbackUrl": {
        "type": "object",
        "required": ["postback_url"],
        "additionalProperties": False,
        "properties": {"postback_url": {"type": "string"}},
    },
    "ConsumerFilters": {
        "type": "object",
        "additionalProperties": False,
        "description": "an absent or empty list matches everything",
        "properties": {
            name: {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "maxItems": 500}
            for name in ("brokers", "accounts", "statuses", "sources")
        },
    },
    "Consumer": {
        "type": "object",
        "description": 'a consumer as shown: never a secret (docs/consumers.md "The view")',
        "required": [
            "id",
            "type",
            "description",
            "filters",
            "enabled",
            "source",
            "created_at",
            "counts",
            "last_error",
            "last_error_at",
            "latency_ms",
            "disabled_reason",
            "secret_rotated_at",
            "previous_secret_until",
        ],
        "properties": {
            "id": {"type": "string"},
            "type": {"enum": ["http", "rq", "redis_stream"]},
            "url": {"type": "string"},
            "queue": {"type": "string"},
            "function": {"type": "string"},
            "stream": {"type": "string"},
            "description": {"type": "string"},
            "filters": {
                "type": "object",
                "required": ["brokers", "accounts", "statuses", "sources"],
                "properties": {
                    name: {"type": "array", "items": {"type": "string"}}
                    for name in ("brokers", "accounts", "statuses", "sources")
                },
            },
            "enabled": {"type": "boolean"},
            "source": {"enum": ["api", "environment"]},
            "created_at": NULLABLE_STRING,
            "counts": {
                "type": "object",
                "required": ["delivered", "pending", "failed"],
                "properties": {name: {"type": "integer"} for name in ("delivered", "pending", "failed")},
            },
            "last_error": NULLABLE_STRING,
            "last_error_at": NULLABLE_STRING,
            "latency_ms": {
                "type": "object",
                "required": ["p50", "p99"],
                "properties": {"p50": {"type": ["number", "null"]}, "p99": {"type": ["number", "null"]}},
            },
            "disabled_reason": NULLABLE_STRING,
            "secret_rotated_at": NULLABLE_STRING,
            "previous_secret_until": NULLABLE_STRING,
        },
    },
    "NewConsumerAnswer": {
        "allOf": [
            _ref("Consumer"),
            {"type": "object", "properties": {"secret": {"type": "string", "pattern": "^whsec_"}}},
        ]
    },
    "ConsumerList": {
        "type": "object",
        "required": ["consumers"],
        "properties": {"consumers": {"type": "array", "items": _ref("Consumer")}},
    },
    "NewConsumer": {
        "type": "object",
        "required": ["type"],
        "description": "by type: http needs url; rq needs queue and function; redis_stream needs stream",
        "properties": {
            "type": {"enum": ["http", "rq", "redis_stream"]},
            "url": {"type": "string", "format": "uri", "maxLength": 2000},
            "queue": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"},
            "function": {"type": "string", "maxLength": 200},
            "stream": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"},
            "description": {"type": "string", "maxLength": 500},
            "filters": _ref("ConsumerFilters"),
            "enabled": {"type": "boolean", "default": True},
        },
    },
    "ConsumerChange": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "description": {"type": "string", "maxLength": 500},
            "filters": _ref("ConsumerFilters"),
            "enabled": {"type": "boolean"},
            "url": {"type": "string", "format": "uri", "maxLength": 2000},
        },
    },
    "ConsumerSecret": {
        "type": "object",
        "required": ["secret"],
        "additionalProperties": False,
        "properties": {"secret": {"type": "string", "pattern": "^whsec_"}},
    },
    "ConsumerTestQueued": {
        "type": "object",
        "required": ["event_id", "status"],
        "properties": {"event_id": {"type": "string"}, "status": {"const": "queued"}},
    },
    "ConsumerTestResult": {
        "type": "object",
        "required": ["event_id", "ok"],
        "properties": {
            "event_id": {"type": ["string", "null"]},
            "ok": {"type": "boolean"},
            "status_code": {"type": ["integer", "null"]},
            "error": NULLABLE_STRING,
            "latency_ms": {"type": ["number", "null"]},
            "sent_at": NULLABLE_STRING,
        },
    },
    "Replay": {
        "type": "object",
        "additionalProperties": False,
        "required": ["since"],
        "properties": {
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "ReplayQueued": {
        "type": "object",
        "required": ["events"],
        "additionalProperties": False,
        "properties": {"events": {"type": "integer"}},
    },
    "LoginFrameInfo": {
        "type": "object",
        "required": ["size", "stored_at"],
        "additionalProperties": False,
        "properties": {"size": {"type": "integer"}, "stored_at": {"type": "string"}},
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI description (a fresh dict each call: callers may not change the shared one)."""
    import copy

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Orderhook",
            "version": VERSION,
            "description": "One verified inbox for Indian broker order updates: postbacks in, normalized events out. "
            'Every refusal is JSON {"error": "..."}. /api/* and /metrics need Authorization: Bearer <ADMIN_TOKEN>.',
        },
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"}},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    """The description itself needs no token: it holds no data, only the shape of the API."""
    return jsonify(document())
