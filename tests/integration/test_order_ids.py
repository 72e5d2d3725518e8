"""GET /api/orders/<broker>/<order_id> reaches every id the API stores (docs/api.md, "One order").

URL parsers resolve a lone `.` or `..` away even as %2E, and an id starting with `/` makes an empty
path segment: those ids travel percent-encoded twice with `double_encoded=1`; `/` and `%` inside an id
travel percent-encoded once, as the contract's path has always taken them.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.support.env import KITE_SECRET
from tests.support.helpers import load_fixture, run_pipeline, sign_kite

KITE = load_fixture("kite_postback_complete.json")
HOSTILE_IDS = ["..", ".", "a/b", "%2F", "/lead", "a//b/", "%252E%252E", "ü x?#&=", "..%2F..", "~"]


def twice(order_id: str) -> str:
    """Percent-encoded twice, dots too (a lone %2E is still a dot segment to a URL parser)."""
    return quote(quote(order_id, safe="").replace(".", "%2E"), safe="")


def store(client, services, order_ids: list[str]) -> None:
    for order_id in order_ids:
        body = json.dumps(sign_kite(dict(KITE, order_id=order_id), KITE_SECRET))
        answer = client.post("/postbacks/kite", data=body)
        assert answer.status_code == 202, answer.data
    run_pipeline(services)


def test_every_stored_id_is_reached_double_encoded(db_client, db_services, admin_headers):
    store(db_client, db_services, HOSTILE_IDS)
    for order_id in HOSTILE_IDS:
        answer = db_client.get(f"/api/orders/kite/{twice(order_id)}?double_encoded=1", headers=admin_headers)
        assert answer.status_code == 200, (order_id, answer.get_json())
        assert answer.get_json()["order_id"] == order_id and len(answer.get_json()["events"]) == 1


def test_ids_a_path_can_carry_are_reached_encoded_once_and_dots_as_sent(client, services, admin_headers):
    store(client, services, ["a/b", "%2F", "ü x?#&=", "..", "."])
    for order_id in ("a/b", "%2F", "ü x?#&="):
        answer = client.get(f"/api/orders/kite/{quote(order_id, safe='')}", headers=admin_headers)
        assert answer.status_code == 200 and answer.get_json()["order_id"] == order_id
    for order_id in ("..", "."):  # a client that keeps dot segments as they are
        answer = client.get(f"/api/orders/kite/{order_id}", headers=admin_headers)
        assert answer.status_code == 200 and answer.get_json()["order_id"] == order_id


def test_the_deliveries_of_an_order_with_any_id_are_listed(client, services, admin_headers):
    """The order page lists its deliveries with ?order=<broker>/<order_id>, whatever text the id holds."""
    store(client, services, ["ü x?#&=", "a/b"])
    for order_id in ("ü x?#&=", "a/b"):
        answer = client.get(f"/api/deliveries?order=kite/{quote(order_id, safe='')}", headers=admin_headers)
        assert answer.status_code == 200, (order_id, answer.get_json())
    control = client.get("/api/deliveries?order=kite/%07bell", headers=admin_headers)
    assert control.status_code == 400 and "printable text" in control.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/orders/kite/x?double_encoded=2", 400, "double_encoded must be 1"),
        ("/api/orders/kite/x?double_encoded=true", 400, "double_encoded must be 1"),
        ("/api/orders/kite/%25FF?double_encoded=1", 400, "not UTF-8"),
        ("/api/orders/kite/%252E%252E?double_encoded=1", 404, "'..'"),
        ("/api/orders/kite/%252E%252E", 404, "'%2E%2E'"),
    ],
)
def test_a_bad_double_encoding_is_a_400_and_an_unknown_id_a_404(client, admin_headers, path, status, words):
    answer = client.get(path, headers=admin_headers)
    assert answer.status_code == status and words in answer.get_json()["error"]
