"""Fake broker REST servers on 127.0.0.1 playing Kite, Dhan and Flattrade (Noren) order books.

Each checks the auth a real broker checks (Kite's `Authorization: token key:token` and
`X-Kite-Version: 3`, Dhan's `access-token` and `client-id`, Noren's form `jData`/`jKey`), answers in
the published shapes (kiteconnect-mocks orders, Dhan v2 order dicts, Noren OrderBook rows) and records
every request. A test can expire the token or make the next answers fail.

A fake broker serves several accounts (`add_account`), each with its own token and book, as one real broker
does: the account it was made with is the fake itself, the others are `Book`s found by their client id (Kite: by
access token, as many users log in through one api_key).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote


class Book:
    """One account's orders at the fake broker, by id, each with its history in time order (oldest first)."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.auth_failures = 0
        self.expired = False
        self.lock = threading.Lock()

    def add(self, order_id: str, rows: list[dict[str, Any]]) -> None:
        """An order and its states, oldest first (the book shows the last)."""
        with self.lock:
            self.histories[order_id] = list(rows)

    def append(self, order_id: str, row: dict[str, Any]) -> None:
        """One more state of an order."""
        with self.lock:
            self.histories.setdefault(order_id, []).append(row)

    def book(self) -> list[dict[str, Any]]:
        """Today's order book: each order's latest state."""
        with self.lock:
            return [rows[-1] for rows in self.histories.values() if rows]

    def history(self, order_id: str) -> list[dict[str, Any]] | None:
        """One order's states oldest first, or None."""
        with self.lock:
            rows = self.histories.get(order_id)
            return list(rows) if rows else None

    def admits(self, token: str) -> bool:
        """True when the token is this account's and not expired; counts a refusal."""
        if token == self.token and not self.expired:
            return True
        with self.lock:
            self.auth_failures += 1
        return False

    def served(self, path: str) -> None:
        """Note one request this account made."""
        with self.lock:
            self.requests.append({"path": path})


class FakeRestBroker(Book):
    """Base: the first account's book and the server; subclasses speak the dialect."""

    def __init__(self) -> None:
        super().__init__()
        #: The other accounts, by what identifies them in a request (client id; Kite: access token).
        self.accounts: dict[str, Book] = {}
        #: Statuses to answer before serving normally (e.g. [503, 429]).
        self.fail_next: list[int] = []
        #: A hostile broker: ("body" or "headers", seconds per byte) drips every answer one byte at a time.
        self.drip: tuple[str, float] | None = None
        #: A hostile broker: the order book is this many copies of its first row, streamed without a length.
        self.huge_rows = 0
        #: Retry-After of a 429 answer.
        self.retry_after = "0"
        #: Seconds to wait before answering one order's history (a slow broker).
        self.history_delay = 0.0
        #: Bytes written by hostile answers (a huge book), to see where the client stopped reading.
        self.bytes_sent = 0
        self.server: ThreadingHTTPServer | None = None

    # Test controls:

    def add_account(self, ident: str, token: str) -> Book:
        """Another account at this broker (`ident`: its client id; Kite: its access token), with its own book."""
        book = Book(token)
        with self.lock:
            self.accounts[ident] = book
        return book

    @property
    def url(self) -> str:
        """The base URL to put in *_API_URL."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    prefix = ""
    #: The order book's path (what a huge book answers) and the JSON around its rows.
    book_path = "/orders"
    huge_wrap = (b'{"status":"success","data":[', b"]}")

    def start(self) -> FakeRestBroker:
        """Serve on a free loopback port in a thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                record = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                with fake.lock:
                    fake.requests.append(record)
                    failing = fake.fail_next.pop(0) if fake.fail_next else None
                    drip, huge = fake.drip, fake.huge_rows
                if drip is not None:
                    self._drip(*drip)
                    return
                if huge and self.path.endswith(fake.book_path):
                    self._huge(huge)
                    return
                if fake.history_delay and not self.path.endswith(fake.book_path):
                    time.sleep(fake.history_delay)
                if failing is not None:
                    status, payload = failing, {"error": "fake failure"}
                else:
                    status, payload = fake.answer(self.command, self.path, dict(self.headers), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", fake.retry_after)
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, where: str, every: float) -> None:
                """One byte every `every` seconds, of the body (after honest headers) or of a header."""
                self.close_connection = True
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                if where == "body":
                    head += b"Content-Length: 20\r\n\r\n"
                else:
                    head += b"X-Drip: "
                try:
                    self.wfile.write(head)
                    self.wfile.flush()
                    for _ in range(20):
                        time.sleep(every)
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    pass  # the client hung up: what a deadline does

            def _huge(self, copies: int) -> None:
                """The book's first row `copies` times, streamed until the end of the connection (no length)."""
                self.close_connection = True
                row = json.dumps(fake.book()[0]).encode()
                head, tail = fake.huge_wrap
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(head)
                    for index in range(copies):
                        piece = (b"," if index else b"") + row
                        self.wfile.write(piece)
                        with fake.lock:
                            fake.bytes_sent += len(piece)
                    self.wfile.write(tail)
                except OSError:
                    pass

            do_GET = _serve  # noqa: N815 - http.server naming
            do_POST = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def other(self, ident: str) -> Book | None:
        """Another account's book by what identifies it, or None."""
        with self.lock:
            return self.accounts.get(ident)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Status and JSON answer for one request (subclasses)."""
        raise NotImplementedError


class FakeKiteRest(FakeRestBroker):
    """Kite Connect v3: GET /orders, GET /orders/{id} (history oldest first)."""

    def __init__(self, api_key: str, access_token: str) -> None:
        super().__init__()
        self.api_key, self.access_token = api_key, access_token

    def answer(self, method, path, headers, body):
        auth = headers.get("Authorization") or ""
        key, _, token = auth.removeprefix("token ").partition(":")
        target = self.other(token) if token != self.access_token else None
        if target is not None:
            target.served(path)
            if headers.get("X-Kite-Version") == "3" and key == self.api_key and target.admits(token):
                return self._serve_book(target, method, path)
        elif (
            self.expired or headers.get("X-Kite-Version") != "3" or auth != f"token {self.api_key}:{self.access_token}"
        ):
            self.auth_failures += 1
        else:
            return self._serve_book(self, method, path)
        return 403, {
            "status": "error",
            "message": "Incorrect `api_key` or `access_token`.",
            "data": None,
            "error_type": "TokenException",
        }

    def _authorization(self) -> str:
        """The first account's Authorization header."""
        return f"token {self.api_key}:{self.access_token}"

    def _serve_book(self, book: Book, method: str, path: str) -> tuple[int, Any]:
        """One account's book or one order's history."""
        if method == "GET" and path == "/orders":
            return 200, {"status": "success", "data": book.book()}
        if method == "GET" and path.startswith("/orders/"):
            rows = book.history(unquote(path.split("/")[2]))  # one segment, decoded as a server does
            if rows is None:
                return 400, {"status": "error", "message": "Couldn't find that order.", "error_type": "InputException"}
            return 200, {"status": "success", "data": rows}
        return 404, {"status": "error", "message": "Route not found", "error_type": "GeneralException"}


#: Dhan's answer to a refused token (DhanHQ v2 annexure).
DHAN_REFUSAL = {"errorType": "Invalid_Authentication", "errorCode": "DH-901", "errorMessage": "Invalid token"}


class FakeDhanRest(FakeRestBroker):
    """Dhan v2: GET /v2/orders (array), GET /v2/orders/{id} (the order)."""

    book_path = "/v2/orders"
    huge_wrap = (b"[", b"]")

    def __init__(self, client_id: str, access_token: str) -> None:
        super().__init__()
        self.client_id, self.access_token = client_id, access_token

    def answer(self, method, path, headers, body):
        client_id = headers.get("client-id") or ""
        target = self.other(client_id) if client_id != self.client_id else None
        if target is not None:
            target.served(path)
            if target.admits(headers.get("access-token") or ""):
                return self._serve_book(target, method, path)
            return 401, DHAN_REFUSAL
        if headers.get("access-token") != self.access_token or client_id != self.client_id or self.expired:
            self.auth_failures += 1
            return 401, DHAN_REFUSAL
        return self._serve_book(self, method, path)

    def _serve_book(self, book: Book, method: str, path: str) -> tuple[int, Any]:
        """One account's book or one order's current row."""
        if method == "GET" and path == "/v2/orders":
            return 200, book.book()
        if method == "GET" and path.startswith("/v2/orders/"):
            rows = book.history(unquote(path.split("/")[3]))
            if rows is None:
                return 404, {"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": "no order"}
            return 200, rows[-1]
        return 404, {"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": "no route"}


class FakeNorenRest(FakeRestBroker):
    """Noren (Flattrade PiConnect, Shoonya and Zebu NorenWClientTP): POST /OrderBook, POST /SingleOrdHist (newest
    first), form jData/jKey; `prefix` is the deployment's path (docs/brokers.md §5.4)."""

    prefix = "/PiConnectAPI"
    book_path = "/OrderBook"
    huge_wrap = (b"[", b"]")

    def __init__(self, uid: str, token: str, prefix: str | None = None) -> None:
        super().__init__()
        self.uid, self.token = uid, token
        if prefix is not None:
            self.prefix = prefix

    def answer(self, method, path, headers, body):
        form = parse_qs(body.decode())
        try:
            jdata = json.loads(form["jData"][0])
        except (KeyError, ValueError):
            return 200, {"stat": "Not_Ok", "emsg": "Invalid Input : jData is Missing."}
        uid = str(jdata.get("uid") or "")
        target = self.other(uid) if uid != self.uid else None
        if target is not None:
            target.served(path)
            if not target.admits(form.get("jKey", [""])[0]):
                return 200, {"stat": "Not_Ok", "emsg": "Session Expired :  Invalid Session Key"}
            return self._serve_book(target, path, jdata)
        if form.get("jKey", [""])[0] != self.token or self.expired:
            self.auth_failures += 1
            return 200, {"stat": "Not_Ok", "emsg": "Session Expired :  Invalid Session Key"}
        if uid != self.uid or jdata.get("ordersource") != "API":
            return 200, {"stat": "Not_Ok", "emsg": "Invalid Input : uid or ordersource"}
        return self._serve_book(self, path, jdata)

    def _serve_book(self, fake: Book, path: str, jdata: dict[str, Any]) -> tuple[int, Any]:
        """One account's book or one order's history (newest first)."""
        if jdata.get("ordersource") != "API":
            return 200, {"stat": "Not_Ok", "emsg": "Invalid Input : uid or ordersource"}
        if path == f"{self.prefix}/OrderBook":
            book = fake.book()
            return 200, ([dict(row, stat="Ok") for row in book] if book else {"stat": "Not_Ok", "emsg": "no data"})
        if path == f"{self.prefix}/SingleOrdHist":
            rows = fake.history(str(jdata.get("norenordno")))
            if rows is None:
                return 200, {"stat": "Not_Ok", "emsg": 'Error Occurred : 5 "no data"'}
            return 200, [dict(row, stat="Ok") for row in reversed(rows)]  # newest first, as Noren sends
        return 404, {"stat": "Not_Ok", "emsg": "no such API"}


#: Firstock's camelCase names of the Noren row keys (the inverse of app/brokers/noren/rest.py's renaming).
NOREN_TO_FIRSTOCK = {
    "norenordno": "orderNumber",
    "uid": "userId",
    "exch": "exchange",
    "tsym": "tradingSymbol",
    "qty": "quantity",
    "prc": "price",
    "prd": "product",
    "trantype": "transactionType",
    "prctyp": "priceType",
    "ret": "retention",
    "fillshares": "fillShares",
    "avgprc": "averagePrice",
    "rejreason": "rejectReason",
    "exchordid": "exchangeOrderId",
    "exch_tm": "exchangeTime",
    "norentm": "orderTime",
    "rpt": "reportType",
}


class FakeFirstockRest(FakeRestBroker):
    """Firstock V1: POST /orderBook and /singleOrderHistory with a JSON body {"userId","jKey"[,"orderNumber"]},
    answered {"status":"success","data":[...]} with camelCase rows (docs/brokers.md §5.4)."""

    prefix = "/V1"
    book_path = "/orderBook"

    def __init__(self, uid: str, token: str) -> None:
        super().__init__()
        self.uid, self.token = uid, token

    def answer(self, method, path, headers, body):
        try:
            request = json.loads(body.decode())
        except ValueError:
            return 400, {"status": "failed", "error": {"message": "invalid JSON"}}
        if request.get("userId") != self.uid or request.get("jKey") != self.token or self.expired:
            self.auth_failures += 1
            return 200, {"status": "failed", "message": "invalid jKey"}
        if path == f"{self.prefix}/orderBook":
            return 200, {"status": "success", "data": [_firstock_row(row) for row in self.book()]}
        if path == f"{self.prefix}/singleOrderHistory":
            rows = self.history(str(request.get("orderNumber")))
            if rows is None:
                return 200, {"status": "failed", "message": "No Data"}
            return 200, {"status": "success", "data": [_firstock_row(row) for row in reversed(rows)]}
        return 404, {"status": "failed", "message": "no such API"}


def _firstock_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Noren row as Firstock spells it."""
    return {NOREN_TO_FIRSTOCK.get(key, key): value for key, value in row.items() if key != "actid"}


def kite_order(
    order_id: str,
    status: str,
    *,
    quantity: int = 10,
    filled: int = 0,
    average: float = 0,
    at: str = "2026-11-28 09:15:00",
    account: str = "AB1234",
    message: str | None = None,
) -> dict[str, Any]:
    """A Kite order dict as GET /orders returns it (kiteconnect-mocks orders.json; account_id, not user_id)."""
    return {
        "account_id": account,
        "placed_by": account,
        "order_id": order_id,
        "exchange_order_id": "1100000000" + order_id[-6:],
        "parent_order_id": None,
        "status": status,
        "status_message": message,
        "status_message_raw": message,
        "order_timestamp": at,
        "exchange_update_timestamp": at if status not in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING") else None,
        "exchange_timestamp": at if status not in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING") else None,
        "variety": "regular",
        "modified": False,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "instrument_token": 408065,
        "order_type": "LIMIT",
        "transaction_type": "BUY",
        "validity": "DAY",
        "validity_ttl": 0,
        "product": "CNC",
        "quantity": quantity,
        "disclosed_quantity": 0,
        "price": 1500.5,
        "trigger_price": 0,
        "average_price": average,
        "filled_quantity": filled,
        "pending_quantity": quantity - filled if status not in ("COMPLETE", "CANCELLED", "REJECTED") else 0,
        "cancelled_quantity": quantity - filled if status == "CANCELLED" else 0,
        "market_protection": 0,
        "meta": {},
        "tag": None,
        "tags": [],
        "guid": "fake-" + order_id,
    }


def kite_lifecycle(order_id: str, *, quantity: int = 10, end: str = "COMPLETE", minute: int = 15) -> list[dict]:
    """PUT ORDER REQ RECEIVED -> VALIDATION PENDING -> OPEN PENDING -> OPEN (same second) -> fill -> end."""
    at = f"2026-11-28 09:{minute:02d}:00"
    later = f"2026-11-28 09:{minute:02d}:30"
    rows = [kite_order(order_id, s, quantity=quantity, at=at) for s in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING")]
    rows += [kite_order(order_id, s, quantity=quantity, at=at) for s in ("OPEN PENDING", "OPEN")]
    if end == "COMPLETE":
        rows.append(kite_order(order_id, "COMPLETE", quantity=quantity, filled=quantity, average=1500.25, at=later))
    elif end == "CANCELLED":
        rows.append(kite_order(order_id, "CANCELLED", quantity=quantity, at=later))
    elif end == "REJECTED":
        rows = rows[:2] + [kite_order(order_id, "REJECTED", quantity=quantity, at=at, message="RMS: margin exceeds")]
    return rows


def dhan_order(
    order_id: str,
    status: str,
    *,
    quantity: int = 5,
    filled: int = 0,
    average: float = 0.0,
    at: str = "2026-11-28 10:00:00",
    client_id: str = "1000000003",
) -> dict[str, Any]:
    """A Dhan v2 order dict as GET /v2/orders returns it (DhanHQ docs, dto/order.py)."""
    return {
        "dhanClientId": client_id,
        "orderId": order_id,
        "correlationId": "corr-" + order_id,
        "orderStatus": status,
        "transactionType": "BUY",
        "exchangeSegment": "NSE_EQ",
        "productType": "INTRADAY",
        "orderType": "LIMIT",
        "validity": "DAY",
        "tradingSymbol": "TCS",
        "securityId": "11536",
        "quantity": quantity,
        "disclosedQuantity": 0,
        "price": 3400.0,
        "triggerPrice": 0.0,
        "afterMarketOrder": False,
        "boProfitValue": 0.0,
        "boStopLossValue": 0.0,
        "legName": "NA",
        "createTime": "2026-11-28 09:59:00",
        "updateTime": at,
        "exchangeTime": at,
        "drvExpiryDate": None,
        "drvOptionType": None,
        "drvStrikePrice": 0.0,
        "omsErrorCode": None,
        "omsErrorDescription": None,
        "algoId": "0",
        "remainingQuantity": quantity - filled,
        "averageTradedPrice": average,
        "filledQty": filled,
    }


def noren_order(
    order_id: str,
    status: str,
    *,
    quantity: int = 50,
    filled: int = 0,
    average: str = "0.00",
    at: str = "10:30:00 28-11-2026",
    report: str | None = None,
    uid: str = "FT0001",
    reason: str = "",
) -> dict[str, Any]:
    """A Noren OrderBook / SingleOrdHist row (every value a string; history rows add `rpt`)."""
    clock, date = at.split(" ")
    row = {
        "norenordno": order_id,
        "uid": uid,
        "actid": uid,
        "exch": "NSE",
        "tsym": "ACC-EQ",
        "qty": str(quantity),
        "prc": "1400.00",
        "prd": "C",
        "status": status,
        "trantype": "B",
        "prctyp": "LMT",
        "ret": "DAY",
        "fillshares": str(filled),
        "avgprc": average,
        "exchordid": "1100000000" + order_id[-6:],
        "norentm": at,
        "exch_tm": f"{date} {clock}" if status != "PENDING" else "",
        "rejreason": reason,
        "remarks": "",
    }
    if report:
        row["rpt"] = report
    return row
