"""The codec server's bounds, tried over real HTTP against the real server on loopback: body
size and length, idle and read timeouts, the connection cap, the Host allowlist, the refusal
of an open bind without authorization, and no key material in any error."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from leo.cli import app
from leo.dev_stack import free_port
from leo.infra.codec import EncryptionCodec, KeyRing, PayloadKeyError, codec_for, new_key
from leo.infra.settings import Settings
from leo.services.codec_server import CodecServer, InsecureBind, ServerLimits

KEY = new_key()
LIMITS = ServerLimits(
    max_body_bytes=4096, idle_timeout_seconds=1.0, read_timeout_seconds=1.0, max_connections=3
)
JSON_POST = "POST /decode HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"


@pytest.fixture
def server() -> Iterator[CodecServer]:
    codec = EncryptionCodec(KeyRing.from_values(KEY, "k1"))
    running = CodecServer(
        ("127.0.0.1", 0), codec, limits=LIMITS, allowed_hosts=["codec.internal.example"]
    )
    running.start_in_thread()
    try:
        yield running
    finally:
        running.shutdown()
        running.server_close()


def port(server: CodecServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def exchange(server: CodecServer, request: bytes, wait: float = 5.0) -> tuple[float, bytes]:
    """Send raw bytes, read until the server closes; (seconds until it closed, answer)."""
    with socket.create_connection(("127.0.0.1", port(server)), timeout=wait) as conn:
        started = time.monotonic()
        conn.sendall(request)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"the server kept the connection open over {wait} s: {answer!r}")
        return time.monotonic() - started, answer


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body(answer: bytes) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(answer.partition(b"\r\n\r\n")[2])
    return parsed


def decode_request(host: str = "127.0.0.1", payload: bytes = b'{"payloads": []}') -> bytes:
    return (
        JSON_POST.format(host=host) + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload


def test_a_well_formed_request_is_answered(server: CodecServer) -> None:
    _, answer = exchange(server, decode_request())
    assert status(answer) == 200 and body(answer) == {}


def test_a_negative_or_missing_length_and_an_oversized_body_are_refused(
    server: CodecServer,
) -> None:
    host = JSON_POST.format(host="127.0.0.1")
    # A negative length would once read until EOF.
    _, answer = exchange(server, (host + "Content-Length: -1\r\n\r\n").encode() + b"A" * 65536)
    assert status(answer) == 400
    _, answer = exchange(
        server, (host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").encode()
    )
    assert status(answer) == 411 and "Content-Length is required" in body(answer)["error"]
    _, answer = exchange(server, (host + "Content-Length: 4097\r\n\r\n").encode())
    assert status(answer) == 413 and "4096 bytes" in body(answer)["error"]
    # A body only JSON may be: anything else would let a browser skip the CORS preflight.
    plain = decode_request().replace(b"application/json", b"text/plain")
    _, answer = exchange(server, plain)
    assert status(answer) == 415
    # And the server still serves.
    assert status(exchange(server, decode_request())[1]) == 200


def test_idle_and_slow_connections_are_closed(server: CodecServer) -> None:
    # Nothing sent at all, and headers that never end: closed after the idle timeout.
    for request in (b"", b"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
        seconds, answer = exchange(server, request)
        assert answer == b"" and 0.5 < seconds < 4, seconds
    # A body that never arrives: 408 after the read timeout.
    slow = (JSON_POST.format(host="127.0.0.1") + "Content-Length: 100\r\n\r\n{").encode()
    seconds, answer = exchange(server, slow)
    assert status(answer) == 408 and seconds < 4, seconds


def test_connections_over_the_cap_are_answered_503_and_the_cap_frees_up(
    server: CodecServer,
) -> None:
    held = [socket.create_connection(("127.0.0.1", port(server))) for _ in range(3)]
    try:
        time.sleep(0.2)
        seconds, answer = exchange(server, decode_request())
        assert status(answer) == 503 and seconds < 1
        assert "too many open connections" in body(answer)["error"]
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.3)
    assert status(exchange(server, decode_request())[1]) == 200


def test_only_loopback_addresses_and_allowed_names_pass_the_host_check(
    server: CodecServer,
) -> None:
    # A DNS-rebinding page sends its own name: refused.
    _, answer = exchange(server, decode_request(host="attacker.example:8081"))
    assert status(answer) == 421 and "--allowed-host" in body(answer)["error"]
    for host in (
        "localhost",
        f"127.0.0.1:{port(server)}",
        "[::1]:8081",
        "10.1.2.3:8081",
        "codec.internal.example",
    ):
        _, answer = exchange(server, decode_request(host=host))
        assert status(answer) == 200, host


def test_a_bind_other_hosts_can_reach_needs_authorization() -> None:
    codec = EncryptionCodec(KeyRing.from_values(KEY, "k1"))
    with pytest.raises(InsecureBind, match="needs --authorization"):
        CodecServer(("0.0.0.0", 0), codec)
    with_auth = CodecServer(("0.0.0.0", 0), codec, authorization="Bearer t")
    with_auth.server_close()

    result = CliRunner().invoke(
        app,
        ["codec-server", "--bind", f"0.0.0.0:{free_port()}"],
        env={"LEO_PAYLOAD_KEY": KEY, "LEO_CODEC_AUTHORIZATION": ""},
    )
    assert result.exit_code == 2, result.output
    assert "needs --authorization" in result.output


def test_no_error_carries_key_material(server: CodecServer) -> None:
    with pytest.raises(PayloadKeyError) as bad_setting:
        codec_for(
            Settings.from_env({"LEO_PAYLOAD_KEY": KEY, "LEO_PAYLOAD_OLD_KEYS": f"x:{KEY},{KEY}"})
        )
    assert "entry 2 has no key id" in str(bad_setting.value)
    raw_key = base64.b64decode(KEY)
    # A payload that does not decrypt, and one too short to hold a nonce.
    for data in (b"x" * 40, b"x"):
        payload = {
            "metadata": {
                "encoding": base64.b64encode(b"binary/encrypted").decode(),
                "encryption-key-id": base64.b64encode(b"k1").decode(),
            },
            "data": base64.b64encode(data).decode(),
        }
        _, answer = exchange(
            server, decode_request(payload=json.dumps({"payloads": [payload]}).encode())
        )
        assert status(answer) == 400
        message = body(answer)["error"]
        assert "k1" in message or "not a valid encrypted payload" in message
        for text in (message, str(bad_setting.value)):
            assert KEY[:6] not in text and raw_key[:4].hex() not in text
