"""Temporal behind a TLS proxy that requires client certificates: a worker, `leo handoff` and
the `temporal` CLI connect with only TEMPORAL_* variables (or a profile), and are refused
without the client certificate."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from leo.dev_stack import Stack, temporal_binary
from tests.cli.helpers import Leo, assert_one_error_line
from tests.support.factories import create_sd
from tests.support.faults import WorkerProcess
from tests.tls.certs import Certificates, make_certificates
from tests.tls.proxy import mtls_proxy

LEO_BIN = str(Path(sys.executable).parent / "leo")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def proxy(
    stack: Stack, certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with mtls_proxy(certificates, stack.temporal_address, tmp_path_factory.mktemp("proxy")) as at:
        yield at


def mtls_env(proxy: str, certs: Certificates) -> dict[str, str]:
    return {
        "TEMPORAL_ADDRESS": proxy,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca.cert),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs.client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs.client.key),
    }


def without_client_cert(env: dict[str, str]) -> dict[str, str | None]:
    return {
        **env,
        "TEMPORAL_TLS_CLIENT_CERT_PATH": None,
        "TEMPORAL_TLS_CLIENT_KEY_PATH": None,
    }


def base_env(migrated_db: str, tmp_path: Path, queue: str) -> dict[str, str | None]:
    # Nothing of the suite's own Temporal settings leaks in: only what the test sets.
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TEMPORAL_")}
    return {
        **cleared,
        "LEO_DATABASE_URL": migrated_db,
        "LEO_DATA_DIR": str(tmp_path / "leo-data"),
        "LEO_TASK_QUEUE": queue,
        "COLUMNS": "250",
        "PYTHONUNBUFFERED": "1",
    }


def process_env(env: dict[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    for name, value in env.items():
        if value is None:
            merged.pop(name, None)
    return merged


def worker_process(env: dict[str, str | None], log: Path) -> WorkerProcess:
    """`leo worker` with exactly `env` on top of the suite's environment minus TEMPORAL_*."""
    worker = WorkerProcess({k: v for k, v in env.items() if v is not None}, log=log)
    worker.argv = [LEO_BIN, "worker"]
    return worker


@pytest.mark.slow
async def test_worker_and_leo_handoff_connect_through_an_mtls_proxy_with_temporal_variables(
    proxy: str,
    certificates: Certificates,
    migrated_db: str,
    db_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    queue = f"leo-tls-{uuid.uuid4().hex[:8]}"
    secure = mtls_env(proxy, certificates)
    env = {**base_env(migrated_db, tmp_path, queue), **secure}
    worker = worker_process(env, tmp_path / "worker.log").start()
    try:
        sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        leo = Leo(env=env)
        async with asyncio.timeout(90):
            result = await leo("handoff", "LEAD-TO-PLAN", sd.sd_key, "--json")
        assert result.exit_code == 0, (result.output, worker.tail())
        assert json.loads(result.stdout)["outcome"] == "accepted"
        assert f"on {proxy} (namespace default, mTLS)" in worker.output()
        # `leo doctor` reports the security in use and finds the worker through the proxy.
        report = json.loads((await leo("doctor", "--json")).stdout)
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["temporal.connection"]["ok"]
        assert checks["temporal.connection"]["detail"].startswith(f"{proxy} (mTLS)")
        assert checks["temporal.worker"]["ok"], checks["temporal.worker"]

        # The same configuration serves the `temporal` CLI: here as a profile file.
        profile = tmp_path / "temporal.toml"
        profile.write_text(
            f"""[profile.secure]
address = "{proxy}"
namespace = "default"
[profile.secure.tls]
server_name = "localhost"
server_ca_cert_path = "{certificates.ca.cert}"
client_cert_path = "{certificates.client.cert}"
client_key_path = "{certificates.client.key}"
"""
        )
        by_profile = {
            **base_env(migrated_db, tmp_path, queue),
            "TEMPORAL_CONFIG_FILE": str(profile),
            "TEMPORAL_PROFILE": "secure",
        }
        sd2 = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        async with asyncio.timeout(90):
            second = await Leo(env=by_profile)("handoff", "LEAD-TO-PLAN", sd2.sd_key, "--json")
        assert second.exit_code == 0, second.output
        workflow_id = json.loads(second.stdout)["workflow_id"]
        described = await asyncio.to_thread(
            subprocess.run,
            [str(temporal_binary()), "workflow", "describe", "-w", workflow_id, "-o", "json"],
            env=process_env(by_profile),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert described.returncode == 0, described.stderr
        assert '"COMPLETED"' in described.stdout or "COMPLETED" in described.stdout

        # Without the client certificate the proxy refuses the handshake.
        refused = await Leo(env={**env, **without_client_cert(secure)})(
            "handoff", "LEAD-TO-PLAN", sd.sd_key
        )
        assert_one_error_line(refused, 3, f"cannot connect to Temporal at {proxy}", "TLS")
        # A CA that did not sign the server's certificate fails verification.
        wrong_ca = await Leo(
            env={**env, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.other_ca.cert)}
        )("handoff", "LEAD-TO-PLAN", sd.sd_key)
        assert_one_error_line(wrong_ca, 3, f"cannot connect to Temporal at {proxy}")
    finally:
        worker.stop()


@pytest.mark.slow
async def test_worker_without_the_client_certificate_is_refused_and_names_temporal(
    proxy: str, certificates: Certificates, migrated_db: str, tmp_path: Path
) -> None:
    env = {
        **base_env(migrated_db, tmp_path, "leo-tls-refused"),
        **without_client_cert(mtls_env(proxy, certificates)),
    }
    worker = worker_process(env, tmp_path / "worker.log").start()
    assert worker.process is not None
    code = await asyncio.to_thread(worker.process.wait, 60)
    output = worker.output()
    assert code == 3, output
    assert f"leo: cannot connect to Temporal at {proxy} (namespace default, TLS)" in output
    assert "Traceback" not in output
