"""README's first command, `leo demo --auto-approve`, end to end in a fresh data directory:
it starts its own stack, drives the plan's SD through the lifecycle, stops everything again,
and a second run changes nothing."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import psutil

from leo.dev_stack import free_port, port_is_open

ROOT = Path(__file__).resolve().parents[2]
LEO_BIN = str(Path(sys.executable).parent / "leo")


async def run_demo(data_dir: Path, port: int) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LEO_DATABASE_URL", "TEMPORAL_ADDRESS")}
    env["LEO_DATA_DIR"] = str(data_dir)
    proc = await asyncio.create_subprocess_exec(
        LEO_BIN,
        "demo",
        "--auto-approve",
        "--agent-seconds",
        "0.3",
        "--temporal-port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_leo_demo_runs_the_lifecycle_on_its_own_stack_and_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    code, out = await run_demo(tmp_path / "leo", port)

    assert code == 0, out
    assert "SD-LIFECYCLE completed for SD-LEO-INFRA-HARDENING-001" in out
    for handoff in (
        "LEAD-TO-PLAN",
        "PLAN-TO-EXEC",
        "EXEC-TO-PLAN",
        "PLAN-TO-LEAD",
        "LEAD-FINAL-APPROVAL",
    ):
        assert f"{handoff}  ACCEPTED" in out, out
    assert "DEMO_ACCEPTANCE_REVIEW" in out and "EXEC-WORK  reported" in out
    assert "LEAD-APPROVAL  approved" in out
    assert not port_is_open("127.0.0.1", port), "the demo left the Temporal dev server running"
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and str(tmp_path) in " ".join(p.info["cmdline"])
    ], "the demo left a process of its stack running"

    again, out2 = await run_demo(tmp_path / "leo", port)
    assert again == 0, out2
    assert "already exists" in out2
    audit_ids = [line.split()[-1] for line in out.splitlines() if line.startswith("audit id:")]
    assert len(audit_ids) == 5 and all(a in out2 for a in audit_ids), (
        "a second run produced new transitions"
    )
