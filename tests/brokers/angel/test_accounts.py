"""Angel One accounts through the API: what one needs (docs/interface.md "Accounts"), and no secret in any answer."""

from __future__ import annotations

import json

CREDENTIALS = {"api_key": "angel-api-key-0077", "pin": "5812", "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DP"}


def post(client, admin_headers, **body):
    return client.post("/api/accounts", json={"broker": "angel", **body}, headers=admin_headers)


def test_an_angel_account_needs_its_client_code_api_key_pin_and_totp_secret(db_client, admin_headers):
    answer = post(db_client, admin_headers, account_id="R52269012", credentials=CREDENTIALS, label="main")
    assert answer.status_code == 201, answer.get_json()
    view = answer.get_json()
    assert view["session"] == {"state": "missing", "logged_in_at": None, "expires_at": None, "login": "totp"}
    assert view["credentials_set"] == ["api_key", "pin", "totp_secret"]
    assert not any(value in json.dumps(view) for value in CREDENTIALS.values())
    for missing in ("pin", "totp_secret", "api_key"):
        partial = {k: v for k, v in CREDENTIALS.items() if k != missing}
        refused = post(db_client, admin_headers, account_id="S7654321", credentials=partial)
        assert refused.status_code == 400 and missing in refused.get_json()["error"], refused.get_json()
    without_id = post(db_client, admin_headers, credentials=CREDENTIALS)
    assert without_id.status_code == 400 and "account_id" in without_id.get_json()["error"]
