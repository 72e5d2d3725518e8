"""The security suite every broker adapter reuses: valid, forged, missing, tampered, wrong token.

A broker's test module subclasses PostbackSecurityCases and supplies the requests; the cases check
the status code, the JSON error and that nothing reached the queue on a refusal.
"""

from __future__ import annotations

import json

from app.brokers.registry import BY_NAME
from app.redis_keys import STREAM
from tests.support.samples import postback_samples


class PostbackSecurityCases:
    """Mixin (not collected by itself): subclasses set the expected codes and build the requests."""

    #: Status for a forged signature (Kite: 403) or a forged token (unsigned brokers: 404).
    forged_status = 404
    #: Status when the checksum or token is missing.
    missing_status = 404

    def valid_request(self) -> tuple[str, bytes]:
        """URL and body of a genuine postback."""
        raise NotImplementedError

    def forged_request(self) -> tuple[str, bytes]:
        """The genuine body signed with the wrong secret, or sent to a made-up token."""
        raise NotImplementedError

    def missing_request(self) -> tuple[str, bytes]:
        """No checksum in the body, or no token in the path."""
        raise NotImplementedError

    def tampered_request(self) -> tuple[str, bytes]:
        """A genuine postback altered in transit (a signed field changed, or a token off by one character)."""
        raise NotImplementedError

    def wrong_token_request(self) -> tuple[str, bytes]:
        """A token that is not ours (for Kite, a token segment on a URL that takes none)."""
        raise NotImplementedError

    def _post(self, client, request: tuple[str, bytes]):
        url, body = request
        return client.post(url, data=body, content_type="application/json")

    def _assert_refused(self, response, status: int, redis_client) -> None:
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.is_json
        assert isinstance(response.get_json()["error"], str) and response.get_json()["error"]
        assert redis_client.xlen(STREAM) == 0

    def test_valid_is_accepted(self, client, redis_client):
        response = self._post(client, self.valid_request())
        assert response.status_code == 202, response.get_data(as_text=True)
        assert response.get_json()["id"].startswith("evt_")
        assert redis_client.xlen(STREAM) == 1

    def test_forged_is_refused(self, client, redis_client):
        self._assert_refused(self._post(client, self.forged_request()), self.forged_status, redis_client)

    def test_missing_is_refused(self, client, redis_client):
        self._assert_refused(self._post(client, self.missing_request()), self.missing_status, redis_client)

    def test_tampered_is_refused(self, client, redis_client):
        self._assert_refused(self._post(client, self.tampered_request()), self.forged_status, redis_client)

    def test_wrong_token_is_refused(self, client, redis_client):
        self._assert_refused(self._post(client, self.wrong_token_request()), 404, redis_client)

    def test_refusal_reveals_no_secret(self, client, redis_client):
        from tests.support.env import KITE_SECRET, POSTBACK_TOKEN

        for request in (self.forged_request(), self.missing_request(), self.tampered_request()):
            text = self._post(client, request).get_data(as_text=True)
            assert KITE_SECRET not in text and POSTBACK_TOKEN not in text


class TokenSecurityCases(PostbackSecurityCases):
    """The suite for brokers gated by the POSTBACK_TOKEN path segment: set `broker` (and `sample_body` to choose)."""

    broker = ""

    @property
    def sample_body(self) -> bytes:
        """The broker's first genuine postback (tests/brokers/<name>/samples.py)."""
        return json.dumps(postback_samples(self.broker)[0]).encode()

    def _url(self, token: str | None) -> str:
        """The broker's route as the registry spells it, with this token or without the token segment."""
        route = BY_NAME[self.broker].postback_path(token or "")
        return route if token is not None else route.removesuffix("/")

    def valid_request(self):
        from tests.support.env import POSTBACK_TOKEN

        return self._url(POSTBACK_TOKEN), self.sample_body

    def forged_request(self):
        return self._url("tok_made_up_by_someone_0000"), self.sample_body

    def missing_request(self):
        return self._url(None), self.sample_body

    def tampered_request(self):
        from tests.support.env import POSTBACK_TOKEN

        return self._url(one_char_changed(POSTBACK_TOKEN)), self.sample_body

    def wrong_token_request(self):
        from tests.support.env import random_token

        return self._url(random_token()), self.sample_body


def one_char_changed(token: str) -> str:
    """The token with its last character changed."""
    return token[:-1] + ("0" if token[-1] != "0" else "1")
