"""Firstock's postback route through the shared security suite (valid, forged, missing, tampered, wrong token), with its
published sample (samples.py); the family's shared checks are in tests/brokers/noren/test_postbacks.py."""

from __future__ import annotations

from tests.support.postback_cases import TokenSecurityCases


class TestFirstockSecurity(TokenSecurityCases):
    broker = "firstock"
