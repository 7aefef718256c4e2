"""Command agents against a real `python worker.py` subprocess: bounded worker memory whatever
an agent prints, no agent process outlives its worker and never two copies run at once, and no
worker secret reaches an agent."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import TLSConfig

from leo.api import LeoClient
from leo.dev_stack import Stack
from leo.domain.handoff_messages import HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType, lifecycle_workflow_id
from leo.domain.verdicts import Verdict
from leo.infra.client import connect_client
from leo.infra.codec import new_key
from leo.infra.settings import Settings
from tests.support.agent_user import HOLDER, PRYING, ensure_agent_user, system_python
from tests.support.factories import add_agent, create_sd
from tests.support.faults import WorkerProcess, worker_env
from tests.tls.certs import Certificates, make_certificates
from tests.tls.proxy import mtls_proxy

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux process semantics")

# The worker's peak resident memory while two agents each print 500 MB (measured: see
# docs/reliability.md). Reading it all, as before, needs more than 500 MB.
PEAK_RSS_BOUND_MB = 150
FLOOD_MB = 500


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(0.05)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the kernel's record of the process's peak resident set."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def run_with_worker(
    leo: LeoClient,
    settings: Settings,
    db_pool: asyncpg.Pool,
    tmp_path: Path,
    agents: list[str],
    extra_env: dict[str, str] | None = None,
    temporal: Client | None = None,
) -> tuple[WorkerProcess, LeoClient, Any]:
    queue = f"leo-bound-{uuid.uuid4().hex[:8]}"
    assert settings.database_url
    assert settings.temporal_address
    env = {
        **worker_env(settings.database_url, settings.temporal_address, queue),
        **(extra_env or {}),
    }
    worker = WorkerProcess(env, log=tmp_path / "worker.log").start()
    client = LeoClient(temporal or leo.client, db_pool, queue)
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    handle = await client.start_handoff(
        HandoffType.LEAD_TO_PLAN, sd.id, options=HandoffOptions(extra_sub_agents=agents)
    )
    return worker, client, handle


def by_code(result: HandoffResult) -> dict[str, Any]:
    return {r.code: r for r in result.sub_agents}


FLOOD_STDOUT = f"""
import sys
block = b"o" * (1 << 20)
for _ in range({FLOOD_MB}):
    sys.stdout.buffer.write(block)
"""
FLOOD_STDERR = f"""
import sys
block = b"e" * (1 << 20)
for _ in range({FLOOD_MB}):
    sys.stderr.buffer.write(block)
sys.stderr.write("done flooding")
sys.exit(3)
"""


@pytest.mark.slow
async def test_agents_printing_500_mb_leave_the_worker_memory_bounded(
    leo: LeoClient, settings: Settings, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    out = await add_agent(
        db_pool, kind="command", ref=["{python}", "-c", FLOOD_STDOUT], timeout=120, priority=40
    )
    err = await add_agent(
        db_pool, kind="command", ref=["{python}", "-c", FLOOD_STDERR], timeout=120, priority=40
    )
    worker, client, handle = await run_with_worker(leo, settings, db_pool, tmp_path, [out, err])
    assert worker.process is not None
    pid = worker.process.pid
    sampled = 0.0
    try:
        baseline = psutil.Process(pid).memory_info().rss / 2**20
        started = time.monotonic()
        task = asyncio.create_task(client.wait(handle))
        while not task.done():
            sampled = max(sampled, psutil.Process(pid).memory_info().rss / 2**20)
            await asyncio.sleep(0.02)
        result = await task
        took = time.monotonic() - started
        peak = peak_rss_mb(pid)
    finally:
        worker.stop()
    print(
        f"worker RSS {baseline:.0f} MB at the start, peak {peak:.0f} MB (sampled max "
        f"{sampled:.0f} MB), bound {PEAK_RSS_BOUND_MB} MB; handoff took {took:.1f} s"
    )
    agents = by_code(result)
    assert agents[out].verdict == Verdict.ERROR
    assert "more than 1000000 bytes on stdout (the per-agent cap)" in agents[out].critical_issues[0]
    assert agents[err].verdict == Verdict.ERROR
    assert agents[err].critical_issues[0].startswith(f"{err}: command exited with code 3: eee")
    assert agents[err].critical_issues[0].endswith("done flooding")
    assert peak < PEAK_RSS_BOUND_MB, f"worker peak RSS {peak:.0f} MB\n{worker.tail()}"


# An agent that records its run (its pid and its grandchild's) and which earlier runs' processes
# are still alive as it starts; the first run then hangs, a later one passes.
RECORDING_AGENT = r"""
import json, os, subprocess, sys, time
from pathlib import Path

runs = Path(sys.argv[1])
runs.mkdir(exist_ok=True)
earlier = [json.loads(p.read_text()) for p in sorted(runs.glob("run-*.json"))]

def alive(pid):
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False

still_alive = [pid for run in earlier for pid in run["pids"] if alive(pid)]
child = subprocess.Popen(["sleep", "300"])  # the worker's grandchild, holding our stdout
n = len(earlier) + 1
tmp = runs / f".run-{n}"
tmp.write_text(json.dumps({"pids": [os.getpid(), child.pid], "alive_at_start": still_alive}))
tmp.rename(runs / f"run-{n}.json")
if n == 1:
    time.sleep(300)
print(json.dumps({"verdict": "PASS", "confidence": 90}))
"""


def runs_of(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("run-*.json"))]


@pytest.mark.slow
async def test_a_sigkilled_workers_agent_dies_and_its_retry_never_overlaps_it(
    leo: LeoClient, settings: Settings, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    code = await add_agent(
        db_pool, kind="command", ref=["{python}", "-c", RECORDING_AGENT, str(runs)], timeout=120
    )
    worker, client, handle = await run_with_worker(leo, settings, db_pool, tmp_path, [code])
    try:
        await until(lambda: len(runs_of(runs)) == 1, 60, "the agent's first run")
        agent, grandchild = runs_of(runs)[0]["pids"]
        await asyncio.to_thread(worker.kill)
        # The parent-death signal ends the agent with its worker, not 300 s later.
        await until(lambda: not alive(agent), 3, f"agent {agent} to die with its worker")
        worker.start()
        # The new worker's start-up sweep ends what the dead one left behind.
        await until(lambda: not alive(grandchild), 30, f"grandchild {grandchild} to be swept")
        result = await asyncio.wait_for(client.wait(handle), 90)
    finally:
        worker.stop()
    recorded = runs_of(runs)
    assert len(recorded) == 2, recorded
    assert recorded[1]["alive_at_start"] == [], "the retry started while the first copy ran"
    assert by_code(result)[code].verdict == Verdict.PASS
    assert result.accepted
    pids = [pid for run in recorded for pid in run["pids"]]
    await until(lambda: not any(alive(p) for p in pids), 5, f"all of {pids} to end")


ENV_DUMP = r"""
import json, os
with open(f"/proc/{os.getppid()}/stat") as f:  # our parent is the run's launcher
    worker_pid = int(f.read().rsplit(")", 1)[1].split()[1])
try:
    with open(f"/proc/{worker_pid}/environ", "rb") as f:
        worker_environ = f.read().decode(errors="replace")
except OSError as exc:
    worker_environ = f"refused: {type(exc).__name__}"
print(json.dumps({"verdict": "PASS", "confidence": 50, "detailed_analysis": json.dumps({
    "env": dict(os.environ), "worker_pid": worker_pid, "worker_environ": worker_environ})}))
"""


async def test_an_agent_sees_no_worker_secret(
    leo: LeoClient, settings: Settings, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    code = await add_agent(db_pool, kind="command", ref=["{python}", "-c", ENV_DUMP])
    await db_pool.execute(
        "UPDATE leo_sub_agents SET env_passthrough = '{AGENT_TOKEN}' WHERE code = $1", code
    )
    payload_key = new_key()  # a real one: the worker encrypts with it, so must our client
    secrets = {
        "LEO_PAYLOAD_KEY": payload_key,
        "PGPASSWORD": "hunter2-pgpassword",
        "WORKER_ONLY_SETTING": "hunter2-worker-only",
    }
    encrypting = await connect_client(
        settings.model_copy(update={"payload_key": SecretStr(payload_key)})
    )
    worker, client, handle = await run_with_worker(
        leo,
        settings,
        db_pool,
        tmp_path,
        [code],
        {**secrets, "AGENT_TOKEN": "for-the-agent"},
        temporal=encrypting,
    )
    try:
        result = await asyncio.wait_for(client.wait(handle), 60)
        assert worker.process is not None
        worker_pid = worker.process.pid
    finally:
        worker.stop()
    agent = by_code(result)[code]
    assert agent.verdict == Verdict.PASS, agent.critical_issues
    seen = json.loads(agent.detailed_analysis)
    assert seen["worker_pid"] == worker_pid
    env = seen["env"]
    assert env["AGENT_TOKEN"] == "for-the-agent"
    assert set(env) <= {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "AGENT_TOKEN",
        "LEO_AGENT_RUN",
        "LEO_AGENT_WORKER",
        "LEO_AGENT_COPY",
    }
    assert settings.database_url
    assert settings.database_url not in json.dumps(env)
    for value in secrets.values():
        assert value not in json.dumps(env)
    # The worker is non-dumpable and the agent has no capability: its environ is closed.
    assert seen["worker_environ"] == "refused: PermissionError"


# --- LEO_AGENT_USER: an agent cannot act on the control plane ---------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def mtls_temporal(
    stack: Stack, certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Temporal behind a proxy that requires the client certificate, as compose's frontend
    does (deploy/temporal/tls): the worker has the certificate, its agents cannot read it."""
    with mtls_proxy(certificates, stack.temporal_address, tmp_path_factory.mktemp("proxy")) as at:
        yield at


@pytest.mark.slow
async def test_an_agent_user_cannot_approve_read_secrets_or_leave_a_grandchild(
    settings: Settings,
    db_pool: asyncpg.Pool,
    certificates: Certificates,
    mtls_temporal: str,
    tmp_path: Path,
) -> None:
    account = ensure_agent_user()
    python = system_python()
    meet = Path(tempfile.mkdtemp(prefix="leo-meet-"))
    meet.chmod(0o1777)
    ca = meet / "ca.pem"  # the CA certificate is public; the client key is not
    shutil.copy(certificates.ca.cert, ca)
    ca.chmod(0o644)
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    holder = await add_agent(
        db_pool, kind="command", ref=[python, "-c", HOLDER, str(meet)], timeout=240
    )
    await db_pool.execute(
        "UPDATE leo_sub_agents SET env_passthrough = '{HOLDER_TOKEN}' WHERE code = $1", holder
    )
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    attempt = [
        python, "-c", PRYING, str(meet), str(certificates.client.key),
        site_packages, mtls_temporal, str(ca), lifecycle_workflow_id(sd.id),
    ]  # fmt: skip
    prying = await add_agent(db_pool, kind="command", ref=attempt, timeout=240)
    queue = f"leo-agent-user-{uuid.uuid4().hex[:8]}"
    assert settings.database_url
    env = {
        **worker_env(settings.database_url, mtls_temporal, queue),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.ca.cert),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certificates.client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certificates.client.key),
        "LEO_AGENT_USER": account.name,
        "HOLDER_TOKEN": "hunter2-token",
        "COLUMNS": "250",
    }
    worker = WorkerProcess(env, log=tmp_path / "worker.log")
    worker.argv = [str(Path(sys.executable).parent / "leo"), "worker"]  # with its banner
    worker.start()
    try:
        temporal = await Client.connect(
            mtls_temporal,
            namespace="default",
            tls=TLSConfig(
                server_root_ca_cert=certificates.ca.cert.read_bytes(),
                client_cert=certificates.client.cert.read_bytes(),
                client_private_key=certificates.client.key.read_bytes(),
                domain="localhost",
            ),
        )
        client = LeoClient(temporal, db_pool, queue)
        handle = await client.start_handoff(
            HandoffType.LEAD_TO_PLAN,
            sd.id,
            options=HandoffOptions(extra_sub_agents=[holder, prying]),
        )
        result = await asyncio.wait_for(client.wait(handle), 300)
        assert worker.process is not None
        worker_pid = worker.process.pid
        log = worker.output()
        agents = by_code(result)
        assert agents[holder].verdict == Verdict.PASS, (agents[holder].critical_issues, log[-4000:])
        assert agents[prying].verdict == Verdict.PASS, (agents[prying].critical_issues, log[-4000:])
        grandchild = int((meet / "grandchild").read_text())
    finally:
        worker.stop()
        shutil.rmtree(meet, ignore_errors=True)
    seen = json.loads(agents[prying].detailed_analysis)
    assert account.owns(seen["uid"]) and account.owns(seen["holder_uid"])
    assert seen["uid"] != seen["holder_uid"]
    # Temporal: the agent has the (public) CA but not the client certificate's key, which only
    # the worker can read: the proxy ends the TLS session before any call. The same connect
    # with the certificate (this test's client, and the worker's) went through.
    assert seen["temporal_tls"].startswith("refused: RuntimeError: Failed client connect")
    # TLS 1.3: the client's handshake completes, then the proxy's `CertificateRequired` alert
    # (or the closed connection, or a broken pipe, whichever the client sees first) fails the
    # first call.
    assert "call error after connection" in seen["temporal_tls"], seen["temporal_tls"]
    assert seen["temporal_plain"].startswith("refused: RuntimeError: Failed client connect")
    assert seen["secret_file"] == "refused: PermissionError"  # the worker's client key
    assert seen["worker_environ"] == "refused: PermissionError"
    assert seen["holder_environ"] == "refused: PermissionError"
    assert seen["token_seen_in"] == []
    assert not alive(grandchild), "the setsid grandchild outlived the run"
    # ...and the handoff was judged normally.
    assert result.accepted, result
    assert f"agents as {account.name}" in log
    assert worker_pid
