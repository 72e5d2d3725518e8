"""/openapi.json describes every endpoint of the contract, and schemathesis holds the app to it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from werkzeug.exceptions import MethodNotAllowed, NotFound

from app.api.openapi import document
from tests.support.env import ADMIN_TOKEN
from tests.support.samples import POSTBACK_SPECS

#: Every broker's postback route (app/brokers/registry.py), as OpenAPI spells it.
POSTBACKS = {("post", spec.postback_path("{token}")) for spec in POSTBACK_SPECS}
#: Every endpoint of interface.md (method, OpenAPI path).
CONTRACT = POSTBACKS | {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/api/orders"),
    ("get", "/api/orders/{broker}/{order_id}"),
    ("get", "/api/deliveries"),
    ("get", "/api/deliveries/{delivery_id}"),
    ("post", "/api/deliveries/{delivery_id}/retry"),
    ("post", "/api/deliveries/redrive"),
    ("get", "/api/feeds"),
    ("put", "/api/feeds/dhan-web/login-frame"),
    ("get", "/api/feeds/dhan-web/login-frame"),
    ("get", "/api/reconcile"),
    ("post", "/api/reconcile"),
    ("get", "/api/brokers"),
    ("get", "/api/accounts"),
    ("post", "/api/accounts"),
    ("get", "/api/accounts/{account_id}"),
    ("patch", "/api/accounts/{account_id}"),
    ("delete", "/api/accounts/{account_id}"),
    ("put", "/api/accounts/{account_id}/session"),
    ("post", "/api/accounts/{account_id}/reconcile"),
    ("post", "/api/accounts/{account_id}/postback-token"),
}
#: docs/interface.md "Consumers".
CONSUMERS = {
    ("get", "/api/consumers"),
    ("post", "/api/consumers"),
    ("get", "/api/consumers/{consumer_id}"),
    ("patch", "/api/consumers/{consumer_id}"),
    ("delete", "/api/consumers/{consumer_id}"),
    ("post", "/api/consumers/{consumer_id}/secret"),
    ("post", "/api/consumers/{consumer_id}/test"),
    ("get", "/api/consumers/{consumer_id}/test"),
    ("post", "/api/consumers/{consumer_id}/replay"),
}
CONTRACT |= CONSUMERS
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Operations whose valid requests the schema cannot fully express (a broker's checksum or path token, a
#: 703-byte frame, an opaque cursor, "consumer and/or since"): for them a schema-valid request may rightly
#: get a 400, so schemathesis's positive-data-acceptance check does not apply. Every other check does.
NOT_EXPRESSIBLE = POSTBACKS | {
    ("put", "/api/feeds/dhan-web/login-frame"),
    ("post", "/api/deliveries/redrive"),
    ("get", "/api/orders"),
    ("get", "/api/deliveries"),
    # What a broker needs (its credentials, whether it names account_id) is per broker (GET /api/brokers), and a
    # generated account id names no account (404); these operations are held to every other check.
    ("post", "/api/accounts"),
    ("get", "/api/accounts/{account_id}"),
    ("patch", "/api/accounts/{account_id}"),
    ("delete", "/api/accounts/{account_id}"),
    ("put", "/api/accounts/{account_id}/session"),
    ("post", "/api/accounts/{account_id}/reconcile"),
    ("post", "/api/accounts/{account_id}/postback-token"),
    # A consumer's destination rules (a dotted function path, a URL with a host, names the service keeps) and
    # a generated id naming no consumer (404) are beyond the schema; every other check holds.
    *(CONSUMERS - {("get", "/api/consumers")}),
}


def test_the_document_covers_the_contract_and_needs_no_token(client):
    answer = client.get("/openapi.json")
    assert answer.status_code == 200 and answer.get_json() == document()
    described = {(method, path) for path, item in document()["paths"].items() for method in item}
    assert described == CONTRACT
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            protected = path.startswith("/api/") or path == "/metrics"
            assert bool(operation.get("security")) == protected, (method, path)
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")) and (path, code) != ("/readyz", "503"):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def _takes_input(method: str, path: str) -> bool:
    """Whether an operation has parameters or a body that invalid requests can be made of."""
    described = document()["paths"][path][method]
    return bool(described.get("parameters") or described.get("requestBody"))


#: Every operation with valid requests; those that take input also with invalid ones.
GENERATED = [
    pytest.param(method, path, mode, id=f"{method}-{path}-{label}")
    for method, path in sorted(CONTRACT)
    for mode, label in ((GenerationMode.POSITIVE, "valid"), (GenerationMode.NEGATIVE, "invalid"))
    if mode is GenerationMode.POSITIVE or _takes_input(method, path)
]


@pytest.mark.parametrize(("method", "path", "mode"), GENERATED)
def test_every_answer_conforms_and_none_is_a_server_error(app, method, path, mode):
    """Generated requests (with the bearer token) get documented statuses and JSON bodies of the documented shape.

    schemathesis's own pytest loader (`from_fixture`) does not run under this pytest, so each operation is
    driven through its Hypothesis strategy here.
    """
    probe = (
        path.replace("{token}", "t")
        .replace("{broker}", "kite")
        .replace("{order_id}", "1")
        .replace("{account_id}", "acc_1")
        .replace("{consumer_id}", "con_1")
    )
    try:
        app.url_map.bind("localhost").match(probe.replace("{delivery_id}", "1"), method=method.upper())
    except (NotFound, MethodNotAllowed):
        pytest.fail(f"{method.upper()} {path} is in the contract but this build does not serve it")
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)[path][method.upper()]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def conforms(case) -> None:
        case.call_and_validate(headers=AUTH, excluded_checks=excluded)

    excluded = [positive_data_acceptance] if (method, path) in NOT_EXPRESSIBLE else []
    # A blank or unknown query parameter is ignored by design (blank means absent, as in .env), so an
    # "invalid" request may rightly succeed; invalid requests are still held to: no 5xx, documented
    # statuses, JSON errors of the documented shape.
    excluded.append(negative_data_rejection)

    conforms()
