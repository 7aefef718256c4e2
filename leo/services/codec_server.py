"""A codec server: Temporal's HTTP protocol for decoding payloads outside the worker.

The Web UI and `temporal workflow show --codec-endpoint URL` send
`POST <URL>/decode` (and `/encode`) with `{"payloads": [...]}` in protobuf JSON and show what
comes back, so people who may read payloads see plaintext while the server stores ciphertext.
Browsers call it cross-origin from the Web UI, so it answers CORS preflights for the allowed
origins; when an authorization value is configured, every POST must carry exactly that
`Authorization` header.

Served with aiohttp, as Temporal's own codec-server sample is, with every bound a server that
holds the key needs: a body limit (a request must state its length), an idle timeout from the
moment a connection opens, a read timeout for the body, a cap on open connections, a `Host`
allowlist (against DNS rebinding), and no key material in any answer. A bind that is not
loopback is refused without an authorization value. The event loop runs in its own thread, so
the CLI's main thread stays free for signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import hdrs, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from leo.infra.codec import EncryptionCodec, PayloadKeyError

# The embedded Web UI of `leo dev` (Temporal port 7233 + 1000).
DEFAULT_CORS_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
DEFAULT_BIND = "127.0.0.1:8081"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
# How long the aiohttp runner lets open requests finish when the server stops.
SHUTDOWN_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class ServerLimits:
    # Twice Temporal's 4 MB gRPC message limit: no batch of one history's payloads is larger.
    max_body_bytes: int = 8 * 1024 * 1024
    # An open connection that has not sent a whole request by then is closed (slow headers
    # included: aiohttp arms this timer when the connection opens), and so is an idle one.
    idle_timeout_seconds: float = 30.0
    # The body of one request must arrive within this.
    read_timeout_seconds: float = 30.0
    # Connections beyond this are answered 503 and closed before anything is read.
    max_connections: int = 32


class InsecureBind(ValueError):
    """A bind that other hosts can reach, with no authorization required."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_is_allowed(host_header: str, allowed: frozenset[str]) -> bool:
    """A `Host` a DNS-rebinding page cannot send: loopback names, IP literals (no DNS name
    to rebind) and the names configured with --allowed-host."""
    name = host_header.strip().lower()
    if name.startswith("[") and "]" in name:  # [v6]:port
        name = name[1 : name.index("]")]
    elif name.count(":") == 1:  # name:port
        name = name.partition(":")[0]
    if name in LOOPBACK_NAMES or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def json_error(status: HTTPStatus, message: str) -> web.Response:
    response = web.json_response({"error": message}, status=status)
    # The rest of a refused request's body is never read: close instead of parsing it as the
    # next request.
    response.force_close()
    return response


class _Refuse(asyncio.Protocol):
    """What a connection over the cap gets: a 503 and a close, without reading anything."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        body = b'{"error": "too many open connections; try again later"}'
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        transport.close()


class CodecServer:
    def __init__(
        self,
        address: tuple[str, int],
        codec: EncryptionCodec,
        *,
        cors_origins: Iterable[str] = DEFAULT_CORS_ORIGINS,
        authorization: str | None = None,
        allowed_hosts: Iterable[str] = (),
        limits: ServerLimits = ServerLimits(),
    ) -> None:
        self.codec = codec
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        self.authorization = authorization or None
        self.allowed_hosts = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self.limits = limits
        host, port = address
        if self.authorization is None and not is_loopback(host):
            raise InsecureBind(
                f"{host} is not a loopback address: whoever reaches the codec server can "
                "decrypt, so it needs --authorization (or LEO_CODEC_AUTHORIZATION), such as "
                "'Bearer <random token>'"
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Bound now, so a busy port fails the constructor and port 0 has a number at once.
        self._socket = socket.create_server((host, port), family=family)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        """Serve on a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve()), name="leo-codec-server", daemon=True
        )
        self._thread.start()
        self._ready.wait(timeout=30)
        return self._thread

    def serve_forever(self) -> None:
        """Serve until `shutdown()`, or until the calling thread is interrupted (a signal)."""
        thread = self.start_in_thread()
        try:
            thread.join()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=SHUTDOWN_GRACE_SECONDS + 10)

    def server_close(self) -> None:
        self._socket.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._guard])
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(
            app,
            keepalive_timeout=self.limits.idle_timeout_seconds,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
            # How long the unread rest of a refused body is drained before the close.
            lingering_time=1.0,
            handle_signals=False,
        )
        await runner.setup()
        http = runner.server
        assert http is not None

        def protocol() -> asyncio.BaseProtocol:
            if len(http.connections) >= self.limits.max_connections:
                return _Refuse()
            return http()

        listener = await self._loop.create_server(protocol, sock=self._socket)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            listener.close()
            await runner.cleanup()

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not host_is_allowed(request.headers.get(hdrs.HOST, ""), self.allowed_hosts):
            response: web.StreamResponse = json_error(
                HTTPStatus.MISDIRECTED_REQUEST,
                "Host header not allowed: use a loopback name or an address, or start the "
                "codec server with --allowed-host NAME",
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = json_error(HTTPStatus(exc.status), exc.reason)
        origin = request.headers.get(hdrs.ORIGIN, "").rstrip("/")
        if origin and origin in self.cors_origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, OPTIONS"
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOWED_HEADERS
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers[hdrs.VARY] = "Origin"
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == hdrs.METH_OPTIONS:
            return web.Response(status=HTTPStatus.NO_CONTENT)
        if request.method != hdrs.METH_POST:
            return json_error(HTTPStatus.METHOD_NOT_ALLOWED, "POST /encode or /decode")
        operations: dict[str, Callable[[list[Payload]], list[Payload]]] = {
            "encode": self.codec.encrypt_all,
            "decode": self.codec.decrypt_all,
        }
        operation = operations.get(request.path.rstrip("/").rpartition("/")[2])
        if operation is None:
            return json_error(
                HTTPStatus.NOT_FOUND, f"no such endpoint {request.path!r}: POST /encode or /decode"
            )
        if self.authorization is not None and not hmac.compare_digest(
            request.headers.get(hdrs.AUTHORIZATION, "").encode(), self.authorization.encode()
        ):
            return json_error(HTTPStatus.UNAUTHORIZED, "missing or wrong Authorization header")
        if request.content_type != "application/json":
            # Also what makes a browser preflight every cross-origin call.
            return json_error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json"
            )
        if request.content_length is None:
            return json_error(
                HTTPStatus.LENGTH_REQUIRED, "Content-Length is required (no chunked bodies)"
            )
        if request.content_length > self.limits.max_body_bytes:
            return json_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body over {self.limits.max_body_bytes} bytes",
            )
        try:
            async with asyncio.timeout(self.limits.read_timeout_seconds):
                raw = await request.read()
        except TimeoutError:
            return json_error(
                HTTPStatus.REQUEST_TIMEOUT,
                f"body not received within {self.limits.read_timeout_seconds:g} s",
            )
        try:
            body = await asyncio.to_thread(self._apply, operation, raw)
        except json_format.ParseError as exc:
            return json_error(HTTPStatus.BAD_REQUEST, f'body must be {{"payloads": [...]}}: {exc}')
        except PayloadKeyError as exc:  # names key ids only, never key bytes
            return json_error(HTTPStatus.BAD_REQUEST, str(exc))
        except (ValueError, DecodeError):
            return json_error(HTTPStatus.BAD_REQUEST, "a payload is not a valid encrypted payload")
        return web.Response(body=body, content_type="application/json")

    @staticmethod
    def _apply(operation: Callable[[list[Payload]], list[Payload]], raw: bytes) -> bytes:
        request = json_format.Parse(raw or b"{}", Payloads())
        payloads = operation(list(request.payloads))
        return json.dumps(json_format.MessageToDict(Payloads(payloads=payloads))).encode()
