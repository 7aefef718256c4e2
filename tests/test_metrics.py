"""The worker's Prometheus endpoint: scraped after a few handoffs, its counts match what ran."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from leo.api import HandoffFailed, LeoClient, LifecycleClient
from leo.cli import app
from leo.dev_stack import free_port, port_is_open
from leo.domain.handoffs import HandoffType
from leo.infra.client import connect_client
from leo.infra.metrics import METRIC_NAMES
from leo.infra.settings import Settings
from leo.infra.telemetry import TelemetryError, metrics_runtime
from leo.runtime import build_worker
from tests.support.factories import create_sd, seed_accepted_handoff
from tests.test_deploy_files import dashboard_metric_names

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$"
)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            found.append((labels, float(match["value"])))
    return found


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples(text, name)
        if all(found.get(k) == v for k, v in labels.items())
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers.get_content_type() == "text/plain"
        return str(response.read().decode())


async def test_metrics_endpoint_counts_what_ran(settings: Settings, db_pool: asyncpg.Pool) -> None:
    port = free_port()
    client = await connect_client(settings, runtime=metrics_runtime(f"127.0.0.1:{port}"))
    queue = f"leo-metrics-{uuid.uuid4().hex[:8]}"
    leo = LeoClient(client, db_pool, queue)
    accepted_sds = [await create_sd(db_pool, ready_for="LEAD-TO-PLAN") for _ in range(2)]
    wrong_phase = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    rejected = await create_sd(
        db_pool, ready_for="PLAN-TO-LEAD", sd_type="security", stories=[{"status": "completed"}]
    )
    await seed_accepted_handoff(db_pool, rejected.id, "EXEC-TO-PLAN")
    await db_pool.execute(
        "INSERT INTO retrospectives (sd_id, quality_score) VALUES ($1, 10)", rejected.id
    )
    done = await create_sd(db_pool, status="completed", phase="COMPLETED")

    async with build_worker(client, db_pool, task_queue=queue):
        accepted = [await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id) for sd in accepted_sds]
        with pytest.raises(HandoffFailed):
            await leo.run_handoff(HandoffType.EXEC_TO_PLAN, wrong_phase.id)
        rejection = await leo.run_handoff(HandoffType.PLAN_TO_LEAD, rejected.id)
        lifecycles = LifecycleClient(leo)
        finished = await lifecycles.wait(await lifecycles.start(done.id))

        text = scrape(port)
        for _ in range(50):  # the exporter may lag the last record by a moment
            if total(text, "leo_lifecycles_total") >= 1:
                break
            await asyncio.sleep(0.1)
            text = scrape(port)

    assert all(r.accepted for r in accepted) and not rejection.accepted
    assert finished.state == "completed"
    assert set(METRIC_NAMES) <= {m for m in METRIC_NAMES if f"# TYPE {m} " in text}
    assert total(text, "leo_handoffs_total", handoff_type="LEAD-TO-PLAN", outcome="accepted") == 2
    assert total(text, "leo_handoffs_total", handoff_type="EXEC-TO-PLAN", outcome="refused") == 1
    assert total(text, "leo_handoffs_total", handoff_type="PLAN-TO-LEAD", outcome="rejected") == 1
    assert total(text, "leo_handoffs_total") == 4
    assert total(text, "leo_handoff_duration_seconds_count", handoff_type="LEAD-TO-PLAN") == 2
    assert total(text, "leo_handoff_duration_seconds_count") == 4
    # Scores: two accepted feature SDs and one rejected security SD; the refusal had none.
    assert total(text, "leo_gate_score_count", sd_type="feature") == 2
    assert total(text, "leo_gate_score_count", sd_type="security") == 1
    assert total(text, "leo_gate_score_sum", sd_type="feature") == sum(
        r.normalized_score or 0 for r in accepted
    )
    assert total(text, "leo_gate_score_bucket", sd_type="security", le="100") == 1
    ran = [a for r in [*accepted, rejection] for a in r.sub_agents if a.ran and not a.reused]
    assert total(text, "leo_sub_agent_duration_seconds_count") == len(ran)
    first = ran[0]
    assert (
        total(
            text,
            "leo_sub_agent_duration_seconds_count",
            code=first.code,
            verdict=first.verdict.value,
        )
        >= 1
    )
    # The dry run before the sub-agents met INVALID_PHASE once; nothing else was refused.
    assert total(text, "leo_transition_refusals_total", code="INVALID_PHASE") == 1
    assert total(text, "leo_transition_refusals_total") == 1
    assert total(text, "leo_lifecycles_total", outcome="completed") == 1
    # The SDK's own metrics come through the same endpoint, the ones the dashboard charts too.
    assert total(text, "temporal_workflow_completed", task_queue=queue) >= 3
    exposed = {m["name"] for m in re.finditer(r"^# TYPE (?P<name>\S+) ", text, re.MULTILINE)}
    assert dashboard_metric_names() <= exposed, dashboard_metric_names() - exposed


def test_without_metrics_bind_no_runtime_is_made() -> None:
    assert metrics_runtime(None) is None
    assert Settings.from_env({}).metrics_bind is None
    with pytest.raises(TelemetryError, match="HOST:PORT"):
        metrics_runtime("9464")


def test_worker_refuses_a_malformed_metrics_bind_before_starting() -> None:
    result = CliRunner().invoke(app, ["worker", "--metrics-bind", "localhost"])
    assert result.exit_code == 2
    assert "--metrics-bind / LEO_METRICS_BIND must be HOST:PORT" in result.output


async def test_leo_worker_serves_metrics_on_its_bind_address(settings: Settings) -> None:
    port = free_port()
    queue = f"leo-metrics-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": str(settings.temporal_address),
        "LEO_DATABASE_URL": str(settings.database_url),
        "LEO_TASK_QUEUE": queue,
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "leo"),
        "worker",
        "--metrics-bind",
        f"127.0.0.1:{port}",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        text = ""
        for _ in range(300):  # start-up, then the pollers register
            if port_is_open("127.0.0.1", port):
                text = await asyncio.to_thread(scrape, port)
                if total(text, "temporal_num_pollers", task_queue=queue):
                    break
            await asyncio.sleep(0.1)
        assert total(text, "temporal_num_pollers", task_queue=queue) > 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert f"metrics at http://127.0.0.1:{port}/metrics" in " ".join(stderr.decode().split())
