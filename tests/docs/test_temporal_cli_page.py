"""Runs every `temporal` command in docs/temporal-cli.md, in order, against the dev server."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
from pathlib import Path

import asyncpg

from leo.dev_stack import Stack, temporal_binary
from tests.support.factories import create_sd

PAGE = Path(__file__).resolve().parents[2] / "docs" / "temporal-cli.md"
PLACEHOLDER_SD = "SD-LEO-DEMO-001"
PLACEHOLDER_LIFECYCLE_SD = "SD-LEO-DEMO-002"
LIFECYCLE_EVIDENCE = {
    "risks": [{"risk": "lock contention", "mitigation": "retry with jitter"}],
    "commits": ["4f1c2d9"],
    "security_findings": [],
}
PLACEHOLDER_QUEUE = "leo-handoffs"

# What each command's output must show, beyond its exit code.
EXPECTED_OUTPUT = {
    "execute": '"accepted":true',
    "describe": "Completed",
    "show": "WorkflowExecutionCompleted",
    "result": '"outcome":"accepted"',
    "query": '"stage":"done"',
    "list": "LEAD-TO-PLAN:",
    "count": "Total:1",
}
LIFECYCLE_OUTPUT = {
    "query": '"sd_key":',
    "update": "accepted:true",
    "result": '"state":"completed"',
    # The documented LeoOutcome of a completed SD-LIFECYCLE finds it.
    "list": "SD-LIFECYCLE:",
}


def shows(done: subprocess.CompletedProcess[str], wanted: str) -> bool:
    return wanted.lower() in (done.stdout + done.stderr).replace(" ", "").lower()


async def run_page_command(
    argv: list[str], env: dict[str, str], wanted: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command. An update sent before the lifecycle reaches the step that accepts it is
    refused ("not waiting for ..."), and visibility (`workflow list`, `workflow count`) lags the
    runs by a moment; a person would wait, so the test retries for a while."""
    visibility = argv[1:3] in (["workflow", "list"], ["workflow", "count"])
    for _ in range(150):
        done = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True, timeout=60
        )
        too_early = argv[2] == "update" and "not waiting for" in done.stdout + done.stderr
        not_indexed = visibility and wanted is not None and not shows(done, wanted)
        if not (too_early or not_indexed):
            return done
        await asyncio.sleep(0.2)
    return done


def page_commands() -> list[tuple[str, int]]:
    """(command, expected exit code) for each `temporal` line in the page's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            if not line.startswith("temporal "):
                continue
            command, _, comment = line.partition("  # ")
            expected = 1 if comment.startswith("exits 1") else 0
            commands.append((command, expected))
    return commands


async def test_every_temporal_command_on_the_docs_page_works(
    stack: Stack, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    commands = page_commands()
    assert len(commands) >= 10
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    chained = await create_sd(
        db_pool,
        sd_type="infrastructure",
        metadata=LIFECYCLE_EVIDENCE,
        with_prd=True,
        stories=[{"status": "ready"}],
    )
    env = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal_address}
    temporal = str(temporal_binary())

    for command, expected_rc in commands:
        text = (
            command.replace(PLACEHOLDER_SD, sd.id)
            .replace(PLACEHOLDER_LIFECYCLE_SD, chained.id)
            .replace(PLACEHOLDER_QUEUE, task_queue)
        )
        argv = [temporal, *shlex.split(text)[1:]]
        if PLACEHOLDER_LIFECYCLE_SD in command:
            wanted = LIFECYCLE_OUTPUT.get(argv[2])
        elif expected_rc == 0 and PLACEHOLDER_SD in command and "LeoOutcome" not in command:
            wanted = EXPECTED_OUTPUT.get(argv[2])
        else:
            wanted = None
        done = await run_page_command(argv, env, wanted)
        output = done.stdout + done.stderr
        if PLACEHOLDER_LIFECYCLE_SD in command:
            assert done.returncode == 0, f"{text}\n{output}"
            if wanted:
                assert shows(done, wanted), f"{text}\n{output}"
            continue
        assert done.returncode == expected_rc, f"{text}\n{output}"
        if expected_rc != 0:
            assert "already finished successfully" in output
        elif wanted:
            assert shows(done, wanted), f"{text}\n{output}"

    runs = await db_pool.fetchval(
        "SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd.id
    )
    assert runs == 1, "re-running the documented commands applied the transition twice"
