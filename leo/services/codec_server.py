"""A codec server: Temporal's HTTP protocol for decoding payloads outside the worker.

The Web UI and `temporal workflow show --codec-endpoint URL` send
`POST <URL>/decode` (and `/encode`) with `{"payloads": [...]}` in protobuf JSON and show what
comes back, so people who may read payloads see plaintext while the server stores ciphertext.
Browsers call it cross-origin from the Web UI, so it answers CORS preflights for the allowed
origins; when an authorization value is configured, every POST must carry exactly that
`Authorization` header. Stdlib HTTP server in threads: the codec work is synchronous.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from leo.infra.codec import EncryptionCodec, PayloadKeyError

# The embedded Web UI of `leo dev` (Temporal port 7233 + 1000).
DEFAULT_CORS_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
DEFAULT_BIND = "127.0.0.1:8081"
MAX_BODY_BYTES = 64 * 1024 * 1024  # far above Temporal's own payload limits
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        codec: EncryptionCodec,
        *,
        cors_origins: Iterable[str] = DEFAULT_CORS_ORIGINS,
        authorization: str | None = None,
    ) -> None:
        self.codec = codec
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        self.authorization = authorization or None
        super().__init__(address, CodecHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="leo-codec-server", daemon=True)
        thread.start()
        return thread


class CodecHandler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        # Request lines only; payloads never reach the log.
        super().log_message(format, *args)

    def do_OPTIONS(self) -> None:
        self._respond(HTTPStatus.NO_CONTENT, b"")

    def do_POST(self) -> None:
        operations: dict[str, Callable[[list[Payload]], list[Payload]]] = {
            "encode": self.server.codec.encrypt_all,
            "decode": self.server.codec.decrypt_all,
        }
        operation = operations.get(self.path.split("?", 1)[0].rstrip("/").rpartition("/")[2])
        if operation is None:
            self._error(
                HTTPStatus.NOT_FOUND, f"no such endpoint {self.path!r}: POST /encode or /decode"
            )
            return
        if self.server.authorization is not None and not hmac.compare_digest(
            (self.headers.get("Authorization") or "").encode(), self.server.authorization.encode()
        ):
            self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong Authorization header")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
            return
        try:
            request = json_format.Parse(self.rfile.read(length) or b"{}", Payloads())
        except json_format.ParseError as exc:
            self._error(HTTPStatus.BAD_REQUEST, f'body must be {{"payloads": [...]}}: {exc}')
            return
        try:
            payloads = operation(list(request.payloads))
        except PayloadKeyError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        body = json_format.MessageToJson(Payloads(payloads=payloads)).encode()
        self._respond(HTTPStatus.OK, body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._respond(status, json.dumps({"error": message}).encode())

    def _respond(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        origin = (self.headers.get("Origin") or "").rstrip("/")
        if origin and origin in self.server.cors_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
