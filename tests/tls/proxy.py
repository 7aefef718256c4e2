"""Debian's haproxy as a TLS-terminating proxy that requires client certificates."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from leo.dev_stack import free_port, port_is_open
from tests.tls.certs import Certificates

ROOT = Path(__file__).resolve().parents[2]


def haproxy_binary() -> str:
    """haproxy's path; installs it with bin/ensure-haproxy (apt-get) if missing, else skips."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    done = subprocess.run(
        [str(ROOT / "bin" / "ensure-haproxy")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        pytest.skip(f"haproxy is not installed and could not be installed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def mtls_proxy(ca: Certificates, backend: str, work: Path) -> Iterator[str]:
    """TCP proxy on a free loopback port: TLS with ALPN h2 (gRPC), client certificate signed
    by `ca` required, plain TCP to `backend`. Yields the proxy's host:port."""
    binary = haproxy_binary()
    port = free_port()
    bundle = work / "haproxy-server.pem"
    bundle.write_text(ca.server.cert.read_text() + ca.server.key.read_text())
    config = work / "haproxy.cfg"
    config.write_text(
        f"""global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend tls_in
    bind 127.0.0.1:{port} ssl crt {bundle} ca-file {ca.ca.cert} verify required alpn h2
    default_backend temporal
backend temporal
    server dev {backend}
"""
    )
    log = work / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-f", str(config), "-db"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 15
        while not port_is_open("127.0.0.1", port):
            assert process.poll() is None, f"haproxy exited: {log.read_text()}"
            assert time.monotonic() < deadline, "haproxy did not open its port in 15 s"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
