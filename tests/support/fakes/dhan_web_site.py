"""A fake https://web.dhan.co page and wss://order-feed.dhan.co socket on one loopback TLS port.

Chromium reaches both names through `--host-resolver-rules` (MAP ... 127.0.0.1) and accepts the
throwaway self-signed certificate made here. The page does what Dhan's web app does (seed 003): it opens
`wss://order-feed.dhan.co/?src=W&id=...` and sends the login frame as its first binary message, then
more frames; the socket side records every message and answers like the feed (a text order_alert and
an echo of binary messages), so a test can check the page's socket keeps working with the extension.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

SITE_HOST = "web.dhan.co"
FEED_HOST = "order-feed.dhan.co"
#: The first text message the fake feed answers a login with (shape of seed 003's order_alert).
ORDER_ALERT = {"Type": "order_alert", "Data": {"order_no": "1", "status": "Pending", "symbol": "IDEA"}}


def self_signed_certificate(directory: Path, names: tuple[str, ...] = (SITE_HOST, FEED_HOST)) -> tuple[Path, Path]:
    """A throwaway certificate and key (PEM files) for `names` and 127.0.0.1, valid for one day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName(name) for name in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "site-cert.pem", directory / "site-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class SocketSession:
    """One WebSocket the page opened: the Host it asked for, its path and every message it sent."""

    host: str
    path: str
    messages: list[str | bytes] = field(default_factory=list)

    @property
    def binary(self) -> list[bytes]:
        """The binary messages in order."""
        return [m for m in self.messages if isinstance(m, bytes)]


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Dhan (fake)</title></head>
<body><h1>fake web.dhan.co</h1>
<script>
"use strict";
const plan = __PLAN__;
const results = { opened: false, received: [], otherOpened: false, errors: [] };
window.results = results;
function bytesOf(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
  return bytes;
}
function payload(b64) {
  const bytes = bytesOf(b64);
  if (plan.as === "blob") return new Blob([bytes]);
  if (plan.as === "view") return bytes;
  return bytes.buffer;
}
const port = location.port ? ":" + location.port : "";
const feed = new WebSocket(`wss://order-feed.dhan.co${port}/?src=W&id=1100000001`);
feed.binaryType = "arraybuffer";
window.feed = feed;
if (plan.early) {
  try { feed.send(payload(plan.frames[0])); } catch (error) { results.early = error.name; }
}
feed.addEventListener("open", () => {
  results.opened = true;
  for (const frame of plan.frames) feed.send(payload(frame));
  feed.send("text after the frames");
});
feed.onmessage = (event) => {
  results.received.push(typeof event.data === "string" ? event.data
    : `binary:${event.data instanceof ArrayBuffer}:${event.data.byteLength}`);
};
feed.onerror = () => results.errors.push("feed error");
if (plan.other) {
  const other = new WebSocket(`wss://web.dhan.co${port}/other`);
  other.binaryType = "arraybuffer";
  window.other = other;
  other.onopen = () => { results.otherOpened = true; other.send(payload(plan.other)); };
  other.onerror = () => results.errors.push("other error");
}
</script></body></html>
"""


class FakeDhanSite:
    """Both hosts on one TLS port of 127.0.0.1, served from a background thread's event loop."""

    def __init__(self, directory: Path) -> None:
        cert, key = self_signed_certificate(directory)
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(cert, key)
        self.frames: dict[str, bytes] = {}
        self.sessions: list[SocketSession] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None

    # Test controls:

    def page_url(self, *frame_names: str, send_as: str = "buffer", other: str = "", early: bool = False) -> str:
        """The fake Dhan page: sends these frames in order to the order feed (and `other` to web.dhan.co).

        With `early` it first tries to send the first frame before the socket is open, which throws.
        """
        query = f"frames={','.join(frame_names)}&as={send_as}" + (f"&other={other}" if other else "")
        query += "&early=1" if early else ""
        return f"https://{SITE_HOST}:{self.port}/?{query}"

    def feed_sessions(self) -> list[SocketSession]:
        """The sockets opened to order-feed.dhan.co."""
        return [s for s in list(self.sessions) if s.host.split(":")[0] == FEED_HOST]

    def other_sessions(self) -> list[SocketSession]:
        """The sockets opened to any other host."""
        return [s for s in list(self.sessions) if s.host.split(":")[0] != FEED_HOST]

    # Lifecycle:

    def __enter__(self) -> FakeDhanSite:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # Server:

    async def _start(self):
        return await serve(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context, process_request=self._http, ping_interval=None
        )

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTPS requests get the page; WebSocket upgrades go on to `_handle`."""
        if "upgrade" in request.headers.get("Connection", "").lower():
            return None
        url = urlsplit(request.path)
        host = request.headers.get("Host", "").split(":")[0]
        if host != SITE_HOST or url.path != "/":
            return Response(404, "Not Found", Headers([("Content-Length", "0")]), b"")
        query = parse_qs(url.query)
        names = [n for n in query.get("frames", [""])[0].split(",") if n]
        plan = {
            "frames": [base64.b64encode(self.frames[name]).decode() for name in names],
            "as": query.get("as", ["buffer"])[0],
            "early": bool(query.get("early")),
            "other": base64.b64encode(self.frames[query["other"][0]]).decode() if query.get("other") else "",
        }
        body = PAGE.replace("__PLAN__", json.dumps(plan)).encode()
        headers = Headers(
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ]
        )
        return Response(200, "OK", headers, body)

    async def _handle(self, ws: ServerConnection) -> None:
        """Record every message; answer the first with an order_alert and echo binary ones."""
        assert ws.request is not None
        session = SocketSession(host=ws.request.headers.get("Host", ""), path=ws.request.path)
        self.sessions.append(session)
        try:
            async for message in ws:
                session.messages.append(message)
                if len(session.messages) == 1:
                    await ws.send(json.dumps(ORDER_ALERT))
                if isinstance(message, bytes):
                    await ws.send(message)
        except ConnectionClosed:
            pass
