"""`leo demo`: the hardening plan's own SD driven through SD-LIFECYCLE on a real stack.

The lifecycle runs the five handoffs as child workflows. The demo plays EXEC (it sends the
completion report) and, with --auto-approve, LEAD. Two command sub-agents from examples/agents
take a few seconds each, so their parallelism shows; progress comes from the workflows'
`status` and `progress` queries.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import yaml
from pydantic import BaseModel
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from leo.api import HandoffFailed, LeoClient, LifecycleClient
from leo.domain.handoff_messages import HandoffOptions, HandoffProgress, HandoffResult
from leo.domain.handoffs import HandoffType, Step, workflow_id_for
from leo.domain.lifecycle_messages import ExecReport, LifecycleStatus, StepRecord
from leo.repository import SdSpec, create_sd, resolve_sd_id
from workflows.registry import HANDOFF_RUN, HANDOFF_WORKFLOWS
from workflows.sd_lifecycle import SdLifecycleWorkflow

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
        lines.append(Text(f"Web UI: {url}", style="cyan", no_wrap=True, overflow="ignore"))
    return Group(*lines)


class DemoOutcome(BaseModel):
    lifecycle: LifecycleStatus
    results: list[HandoffResult]


def exec_report(spec: SdSpec) -> ExecReport:
    """What EXEC reports when the work is done: tests, commits, a retrospective."""
    return ExecReport(
        summary="Atomic transition functions, parallel sub-agent workflows and gate scoring shipped",
        test_results={
            key: "passing"
            for key, story in zip(spec.story_keys, spec.stories, strict=True)
            if story.e2e_test_path
        },
        commits=["c0ffee1 fault suite", "5eed2a1 docs"],
        retrospective={
            "quality_score": 85,
            "what_went_well": ["atomic transitions removed the partial-state class of bugs"],
            "what_to_improve": ["record sub-agent evidence earlier in EXEC"],
        },
    )


async def child_result(leo: LeoClient, record: StepRecord) -> HandoffResult | None:
    if record.workflow_id is None or record.run_id is None:
        return None
    handoff = HandoffType(record.step.value)
    handle = leo.client.get_workflow_handle_for(
        HANDOFF_RUN[handoff], record.workflow_id, run_id=record.run_id
    )
    try:
        return await leo.wait(handle)
    except HandoffFailed:
        return None


def render_step(record: StepRecord) -> Text:
    if record.step is Step.EXEC_WORK:
        return Text(f"EXEC-WORK  reported: {record.detail}", style="cyan")
    if record.step is Step.LEAD_APPROVAL:
        style = "bold green" if record.outcome == "approved" else "bold red"
        return Text(f"LEAD-APPROVAL  {record.outcome}: {record.detail or ''}", style=style)
    return Text(f"{record.step.value}  {record.outcome}", style="dim")


async def run_demo(
    leo: LeoClient,
    pool: asyncpg.Pool,
    *,
    console: Console,
    ui_url: str | None,
    namespace: str,
    agent_seconds: float = 3.0,
    sd_key: str | None = None,
    auto_approve: bool = False,
    poll_seconds: float = 0.25,
) -> DemoOutcome:
    """Drive the demo SD through SD-LIFECYCLE. EXEC's report is sent by the demo; LEAD's
    approval comes from `leo approve <SD>` in another terminal, or from the demo itself with
    `auto_approve`."""
    spec = load_demo_spec(sd_key=sd_key)
    agents = await register_demo_agents(pool, agent_seconds)
    sd_id, created = await ensure_demo_sd(pool, spec)
    console.print(
        f"[bold]{spec.sd_key}[/bold] ({spec.sd_type}): "
        + (
            f"created from {DEMO_SD_FILE.relative_to(PROJECT_ROOT)}"
            if created
            else "already exists; its lifecycle resumes where it stands (a completed one returns its summary)"
        )
    )
    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(sd_id, options=HandoffOptions(extra_sub_agents=agents))
    if ui_url:
        console.print(
            f"Web UI: {ui_url}/namespaces/{namespace}/workflows/{quote(handle.id, safe='')}",
            style="cyan",
        )
    waiter = asyncio.create_task(lifecycle.wait(handle))
    shown = 0
    sent: set[str] = set()
    results: list[HandoffResult] = []

    async def show_new_steps(status: LifecycleStatus) -> None:
        nonlocal shown
        for record in status.steps[shown:]:
            result = (
                await child_result(leo, record)
                if record.outcome in ("accepted", "rejected")
                else None
            )
            if result is not None:
                results.append(result)
                console.print(render_result(result, workflow_url(ui_url, namespace, result)))
            else:
                console.print(render_step(record))
            console.print()
        shown = len(status.steps)

    with Live(
        Text("starting SD-LIFECYCLE ..."), console=console, refresh_per_second=8, transient=True
    ) as live:
        while not waiter.done():
            try:
                status = await handle.query(SdLifecycleWorkflow.status)
            except Exception:  # not started yet: the next poll will show it
                await asyncio.wait({waiter}, timeout=poll_seconds)
                continue
            await show_new_steps(status)
            if status.waiting_for == "exec_complete" and "exec" not in sent:
                sent.add("exec")
                await lifecycle.report_exec_complete(sd_id, exec_report(spec))
            elif status.waiting_for == "approval" and "approval" not in sent:
                sent.add("approval")
                if auto_approve:
                    await lifecycle.approve(
                        sd_id, approver="leo demo --auto-approve", reason="demo"
                    )
                else:
                    console.print(
                        f"[bold yellow]Waiting for LEAD's approval.[/bold yellow] In another terminal run:\n"
                        f"  bin/leo approve {spec.sd_key} --approver <you>"
                    )
            live.update(await progress_view(leo, status))
            await asyncio.wait({waiter}, timeout=poll_seconds)
    final = await waiter
    await show_new_steps(final)
    return DemoOutcome(lifecycle=final, results=results)


async def progress_view(leo: LeoClient, status: LifecycleStatus) -> Table | Text:
    step = status.current_step
    if status.waiting_for:
        return Text(f"SD-LIFECYCLE at {step}: waiting for {status.waiting_for}", style="yellow")
    if step is None or step in (Step.EXEC_WORK, Step.LEAD_APPROVAL) or status.sd_id is None:
        return Text(f"SD-LIFECYCLE: {status.state}")
    handoff = HandoffType(step.value)
    handle = leo.client.get_workflow_handle(workflow_id_for(handoff, status.sd_id))
    try:
        progress = await handle.query(
            HANDOFF_WORKFLOWS[handoff].progress, result_type=HandoffProgress
        )
    except Exception:  # the child is starting or already finished
        progress = None
    return render_progress(handoff, progress)
