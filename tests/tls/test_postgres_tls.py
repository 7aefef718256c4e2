"""PostgreSQL over TLS: asyncpg's URL parameters (sslmode=verify-full, sslrootcert) against the
machine's PostgreSQL 15 with ssl=on and only hostssl connections allowed (the embedded build has
no SSL), and every failure names PostgreSQL instead of ending in a bare SSL traceback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.pool import DatabaseUnavailable, create_pool
from leo.dev_stack import Stack, free_port
from tests.cli.helpers import Leo, assert_one_error_line
from tests.support.faults import WorkerProcess
from tests.tls.certs import Certificates, make_certificates

PG15 = Path("/usr/lib/postgresql/15/bin")
LEO_BIN = str(Path(sys.executable).parent / "leo")


def _as_postgres(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # initdb and pg_ctl refuse to run as root; bin/test-postgres15 does the same.
    if os.geteuid() == 0:
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(argv)]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pg-tls-certs"))


@pytest.fixture(scope="module")
def tls_postgres(certificates: Certificates) -> Iterator[int]:
    """A PostgreSQL 15 on loopback with ssl=on that accepts only TLS connections; its port."""
    if not (PG15 / "initdb").exists():
        pytest.skip(f"no PostgreSQL 15 server binaries in {PG15} (bin/test-postgres15 uses them)")
    if os.geteuid() == 0 and shutil.which("su") is None:
        pytest.skip("running as root without `su`: PostgreSQL refuses to run as root")
    # Not under pytest's temp root: that is private to the user running the tests, and the
    # server runs as `postgres`.
    work = Path(tempfile.mkdtemp(prefix="leo-pg15-tls-"))
    data = work / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    _as_postgres([str(PG15 / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    shutil.copy(certificates.server.cert, data / "server.crt")
    shutil.copy(certificates.server.key, data / "server.key")
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
    )
    (data / "server.key").chmod(0o600)
    if os.geteuid() == 0:
        for name in ("server.crt", "server.key", "pg_hba.conf"):
            shutil.chown(data / name, "postgres")
    options = f"-k {work} -c listen_addresses=127.0.0.1 -p {port} -c ssl=on"
    _as_postgres(
        [str(PG15 / "pg_ctl"), "-D", str(data), "-o", f"'{options}'", "-l", str(work / "log"),
         "-w", "start"]
    )  # fmt: skip
    try:
        yield port
    finally:
        _as_postgres([str(PG15 / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(work, ignore_errors=True)


def url(port: int, ca: Path, mode: str = "verify-full", host: str = "localhost") -> str:
    return f"postgresql://postgres@{host}:{port}/postgres?sslmode={mode}&sslrootcert={ca}"


async def test_verify_full_connects_over_tls_and_leo_migrates_through_it(
    tls_postgres: int, certificates: Certificates, tmp_path: Path
) -> None:
    dsn = url(tls_postgres, certificates.ca.cert)
    pool = await create_pool(dsn)
    try:
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await pool.close()

    leo = Leo(env={"LEO_DATABASE_URL": dsn, "LEO_DATA_DIR": str(tmp_path), "COLUMNS": "250"})
    migrated = await leo("db", "migrate", "--json")
    assert migrated.exit_code == 0, migrated.output
    missing = await leo("sd", "show", "SD-NOT-THERE")
    assert_one_error_line(missing, 2, "SD not found")
    report = json.loads((await leo("doctor", "--json")).stdout)
    postgres = next(c for c in report["checks"] if c["name"] == "postgres.connection")
    assert postgres["ok"] and "PostgreSQL 15" in postgres["detail"]
    assert postgres["detail"].endswith(", TLS)")


async def test_a_wrong_ca_or_a_plain_connection_is_refused_naming_postgresql(
    tls_postgres: int, certificates: Certificates, tmp_path: Path
) -> None:
    wrong_ca = url(tls_postgres, certificates.other_ca.cert)
    with pytest.raises(DatabaseUnavailable) as caught:
        await create_pool(wrong_ca)
    assert f"cannot connect to PostgreSQL at {wrong_ca}" in str(caught.value)
    assert "TLS certificate did not verify" in str(caught.value)

    leo = Leo(env={"LEO_DATABASE_URL": wrong_ca, "LEO_DATA_DIR": str(tmp_path)})
    result = await leo("db", "migrate")
    assert_one_error_line(
        result,
        3,
        f"cannot connect to PostgreSQL at postgresql://postgres@localhost:{tls_postgres}/",
        "sslrootcert",
    )

    plain = url(tls_postgres, certificates.ca.cert, mode="disable")
    result = await leo("sd", "show", "SD-ANY", env={"LEO_DATABASE_URL": plain})
    assert_one_error_line(result, 3, "cannot connect to PostgreSQL", "no encryption")


@pytest.mark.slow
async def test_leo_worker_with_a_wrong_ca_names_postgresql_without_a_traceback(
    tls_postgres: int, certificates: Certificates, stack: Stack, tmp_path: Path
) -> None:
    wrong_ca = url(tls_postgres, certificates.other_ca.cert)
    worker = WorkerProcess(
        {
            "LEO_DATABASE_URL": wrong_ca,
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "LEO_DATA_DIR": str(tmp_path),
            "PYTHONUNBUFFERED": "1",
        },
        log=tmp_path / "worker.log",
    )
    worker.argv = [LEO_BIN, "worker"]
    worker.start()
    assert worker.process is not None
    code = await asyncio.to_thread(worker.process.wait, 60)
    output = worker.output()
    assert code == 3, output
    assert (
        f"leo: cannot connect to PostgreSQL at postgresql://postgres@localhost:{tls_postgres}/"
        in output
    )
    assert "TLS certificate did not verify" in output
    assert "Traceback" not in output
