"""`leo demo`: the hardening plan's own SD driven through all five handoffs, on a real stack.

Runs a worker in-process, registers two command sub-agents from examples/agents (they take a
few seconds each, so their parallelism shows), shows live progress from the workflows'
`progress` query, and returns the typed results for the summary.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from db.transitions import HandoffType
from leo.api import LeoClient
from leo.repository import SdSpec, create_sd, resolve_sd_id
from workflows import HANDOFF_WORKFLOWS
from workflows.pipeline import HandoffOptions, HandoffProgress, HandoffResult

if TYPE_CHECKING:
    import asyncpg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = PROJECT_ROOT / "examples"
DEMO_SD_FILE = EXAMPLES / "sd-leo-infra-hardening-001.yaml"
DEMO_AGENTS = {
    "DEMO_ACCEPTANCE_REVIEW": ("Acceptance criteria reviewer (command)", "acceptance_review.py"),
    "DEMO_PLAN_TRACEABILITY": ("Plan traceability checker (command)", "plan_traceability.py"),
}
STATE_STYLE = {"pending": "dim", "running": "yellow", "done": "green", "skipped": "red"}
VERDICT_STYLE = {"PASS": "green", "CONDITIONAL_PASS": "yellow", "WARNING": "yellow"}


def load_demo_spec(path: Path = DEMO_SD_FILE, sd_key: str | None = None) -> SdSpec:
    data = yaml.safe_load(path.read_text())
    if sd_key:
        data["sd_key"] = sd_key
    return SdSpec.model_validate(data)


async def register_demo_agents(pool: asyncpg.Pool, seconds: float) -> list[str]:
    """Upsert the example command agents into the catalogue, pointing at this checkout."""
    for code, (name, script) in DEMO_AGENTS.items():
        argv = ["{python}", str(EXAMPLES / "agents" / script), "--seconds", f"{seconds:g}"]
        await pool.execute(
            "INSERT INTO leo_sub_agents (code, name, priority, timeout_seconds, executor_kind, executor_ref) "
            "VALUES ($1, $2, 60, $3, 'command', $4) ON CONFLICT (code) DO UPDATE "
            "SET name = EXCLUDED.name, timeout_seconds = EXCLUDED.timeout_seconds, "
            "executor_kind = 'command', executor_ref = EXCLUDED.executor_ref, active = true",
            code,
            name,
            max(30.0, seconds * 3),
            json.loads(json.dumps(argv)),
        )
    return list(DEMO_AGENTS)


async def ensure_demo_sd(pool: asyncpg.Pool, spec: SdSpec) -> tuple[str, bool]:
    """The demo SD's canonical id, creating it if needed; True when it was created now."""
    async with pool.acquire() as conn:
        existing = await resolve_sd_id(conn, spec.sd_key)  # type: ignore[arg-type]
        if existing is not None:
            return existing, False
        details = await create_sd(conn, spec)  # type: ignore[arg-type]
    return details.sd.id, True


async def record_exec_evidence(pool: asyncpg.Pool, sd_id: str) -> None:
    """What EXEC leaves behind for PLAN and LEAD to verify: a retrospective."""
    await pool.execute(
        "INSERT INTO retrospectives (sd_id, quality_score, what_went_well, what_to_improve) "
        "SELECT $1, 85, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM retrospectives WHERE sd_id = $1)",
        sd_id,
        ["atomic transitions removed the partial-state class of bugs"],
        ["record sub-agent evidence earlier in EXEC"],
    )


def workflow_url(ui_url: str | None, namespace: str, result: HandoffResult) -> str | None:
    if not ui_url:
        return None
    return (
        f"{ui_url}/namespaces/{namespace}/workflows/"
        f"{quote(result.workflow_id, safe='')}/{result.run_id}/history"
    )


def render_progress(handoff: HandoffType, progress: HandoffProgress | None) -> Table:
    table = Table(
        title=f"{handoff.value}: {progress.stage if progress else 'starting'}", expand=False
    )
    table.add_column("sub-agent")
    table.add_column("state")
    table.add_column("verdict")
    for agent in progress.sub_agents if progress else []:
        verdict = agent.verdict or ""
        if agent.confidence is not None:
            verdict += f" ({agent.confidence})"
        table.add_row(
            agent.code,
            Text(agent.state, style=STATE_STYLE.get(agent.state, "")),
            Text(
                verdict,
                style=VERDICT_STYLE.get(agent.verdict or "", "red" if agent.verdict else ""),
            ),
        )
    return table


async def run_handoff_with_progress(
    leo: LeoClient, handoff: HandoffType, sd_id: str, options: HandoffOptions, console: Console
) -> HandoffResult:
    handle = await leo.start_handoff(handoff, sd_id, options=options)
    waiter = asyncio.create_task(leo.wait(handle))
    progress_query = HANDOFF_WORKFLOWS[handoff].progress
    with Live(
        render_progress(handoff, None), console=console, refresh_per_second=8, transient=True
    ) as live:
        while not waiter.done():
            try:
                progress = await handle.query(progress_query)
                live.update(render_progress(handoff, progress))
            except Exception:  # not started yet: the next poll will show it
                pass
            await asyncio.wait({waiter}, timeout=0.25)
    return await waiter


def render_result(result: HandoffResult, url: str | None) -> Group:
    score = f"{result.normalized_score:.1f}" if result.normalized_score is not None else "n/a"
    outcome = Text(result.outcome.upper(), style="bold green" if result.accepted else "bold red")
    head = Text.assemble(
        f"{result.handoff_type.value}  ",
        outcome,
        f"  score {score} / threshold {result.threshold:g} ({result.sd_type})  ",
        f"{result.previous_phase} -> {result.new_phase} (v{result.transition_version})",
    )
    gates = Table(show_header=True, box=None, padding=(0, 2))
    gates.add_column("gate")
    gates.add_column("status")
    gates.add_column("score")
    for gate in result.gates:
        gates.add_row(
            gate.name,
            gate.status.value,
            f"{gate.percent:.0f}" if gate.percent is not None else (gate.skip_reason or ""),
        )
    agents = ", ".join(f"{r.code} {r.verdict.value}" for r in result.sub_agents)
    lines: list[Text | Table] = [head, gates, Text(f"sub-agents: {agents}", style="dim")]
    if result.failed_gate:
        lines.append(
            Text(f"failed gate {result.failed_gate}: {'; '.join(result.issues)}", style="red")
        )
    lines.append(Text(f"audit id: {result.audit_id or '-'}", style="dim"))
    if url:
        lines.append(Text(f"Web UI: {url}", style="cyan"))
    return Group(*lines)


async def run_demo(
    leo: LeoClient,
    pool: asyncpg.Pool,
    *,
    console: Console,
    ui_url: str | None,
    namespace: str,
    agent_seconds: float = 3.0,
    sd_key: str | None = None,
    on_result: Callable[[HandoffResult], None] | None = None,
) -> list[HandoffResult]:
    spec = load_demo_spec(sd_key=sd_key)
    agents = await register_demo_agents(pool, agent_seconds)
    sd_id, created = await ensure_demo_sd(pool, spec)
    console.print(
        f"[bold]{spec.sd_key}[/bold] ({spec.sd_type}): "
        + (
            "created from " + str(DEMO_SD_FILE.relative_to(PROJECT_ROOT))
            if created
            else "already exists; handoffs that were accepted return their first result"
        )
    )
    options = HandoffOptions(extra_sub_agents=agents)
    results = []
    for handoff in HandoffType:
        if handoff is HandoffType.PLAN_TO_LEAD:
            await record_exec_evidence(pool, sd_id)
        result = await run_handoff_with_progress(leo, handoff, sd_id, options, console)
        results.append(result)
        console.print(render_result(result, workflow_url(ui_url, namespace, result)))
        console.print()
        if on_result is not None:
            on_result(result)
        if not result.accepted:
            break
    return results
