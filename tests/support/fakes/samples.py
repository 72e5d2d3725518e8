"""Broker samples the feed tests push: seed 000 (Jainam) and synthetic Dhan web login frames (seed 003 layout)."""

from __future__ import annotations

import base64
import copy
import struct
from typing import Any

# Seed 000 (protrade.jainam.in/apidocs/Webhooks): the documented ORD_NRML sample, a surveillance reject.
JAINAM_ORD_NRML_SEED: dict[str, Any] = {
    "MessageType": "ORD_NRML",
    "ManagerID": "8",
    "OrderNumber": "0",
    "CliOrderNumber": 1,
    "Exchange": "1",
    "ScripCode": "25",
    "Symbol": "ADANIENT",
    "Series": "EQ",
    "InstrumentName": "",
    "ExpiryDate": "",
    "StrikePrice": 0,
    "Option_Type": "",
    "Buy_Sell": "1",
    "OrderOriginalQty": 1,
    "PendingQty": 1,
    "TradedQTY": "0",
    "DQ": 0,
    "DQRemaining": 0,
    "OrderPrice": 227000,
    "TriggerPrice": 0,
    "OrderType": 2,
    "MarketType": 1,
    "OrderStatus": 15,
    "Reason": "Order failed surveillance for user_ID and was rejected by Admin Serverron/cancellation "
    "requestestPRO BUY",
    "OrderValidity": "1",
    "Days": "0",
    "ProCli": "1",
    "UserID": "35941",
    "PartCode": "",
    "OrderEntryTime": "01-Feb-2025 16.26.05",
    "LastModifiedTime": "01-Feb-2025 16.26.05",
    "CP_ID": "",
    "UCC": "<User_ID>",
    "Product": "M",
    "InitiatedBy": "APIMOBILE",
    "ModifiedBy": "APIMOBILE",
    "InitiatedByUserId": "<User_ID>",
    "ModifiedByUserId": "<User_ID>",
    "LegIndicator": "",
    "UserRemarks": "-1",
    "Misc": "",
    "SpreadFlag": 0,
    "SpreadPrice": 0,
    "AMOOrderID": "",
    "GTDOrderStatus": 0,
    "MessageSequenceNumber": "20250310001149850",
    "UniqueCode": "OKUAU0000112",
}


def jainam_order(**changes: Any) -> dict[str, Any]:
    """The seed with fields changed."""
    message = copy.deepcopy(JAINAM_ORD_NRML_SEED)
    message.update(changes)
    return message


def dhan_web_login_frame(entity_id: str = "1100000001", token: str = "0" * 32, code: int = 42) -> bytes:
    """A 703-byte frame in the seed 003 layout (struct bh30s50s500s50s50s10s10s, docs/brokers.md §4.3), fake values."""
    frame = struct.pack(
        "<bh30s50s500s50s50s10s10s",
        code,
        105,  # the length field as the seed 003 capture has it
        entity_id.encode(),
        token.encode(),
        b"W",
        b"9999999999",
        b"",
        b"",
        b"",
    )
    assert len(frame) == 703
    return frame


def b64(frame: bytes) -> str:
    """Base64 text, as the login-frame endpoint takes it."""
    return base64.b64encode(frame).decode()
