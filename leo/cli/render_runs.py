"""What `leo handoff`, `leo lifecycle` and `leo demo` print: handoff results, sub-agent progress,
lifecycle steps and the demo's summary. The shared console and JSON helpers are in
`leo.cli.render`."""

from __future__ import annotations

import sys
from urllib.parse import quote

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from leo.cli.render import print_json, stdout
from leo.domain.handoff_messages import HandoffProgress, HandoffResult
from leo.domain.handoffs import HandoffType, Step
from leo.domain.lifecycle_messages import LifecycleStatus, StepRecord

STATE_STYLE = {"pending": "dim", "running": "yellow", "done": "green", "skipped": "red"}
VERDICT_STYLE = {"PASS": "green", "CONDITIONAL_PASS": "yellow", "WARNING": "yellow"}


def workflow_url(ui_url: str | None, namespace: str, result: HandoffResult) -> str | None:
    if not ui_url:
        return None
    return (
        f"{ui_url}/namespaces/{namespace}/workflows/"
        f"{quote(result.workflow_id, safe='')}/{result.run_id}/history"
    )


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


def render_step(record: StepRecord) -> Text:
    if record.outcome == "bypassed":
        return Text(f"{record.step.value}  BYPASSED: {record.detail}", style="bold yellow")
    if record.step is Step.EXEC_WORK:
        return Text(f"EXEC-WORK  reported: {record.detail}", style="cyan")
    if record.step is Step.LEAD_APPROVAL:
        style = "bold green" if record.outcome == "approved" else "bold red"
        return Text(f"LEAD-APPROVAL  {record.outcome}: {record.detail or ''}", style=style)
    return Text(f"{record.step.value}  {record.outcome}", style="dim")


def print_lifecycle_status(status: LifecycleStatus, *, as_json: bool) -> None:
    if as_json:
        print_json(status.model_dump(mode="json"))
        return
    console = stdout()
    console.print(
        f"[bold]{status.sd_key}[/bold] lifecycle: {status.state}"
        + (f", waiting for {status.waiting_for}" if status.waiting_for else "")
        + (f" at {status.current_step}" if status.current_step else "")
        + (f" (session {status.session_id})" if status.session_id else "")
    )
    for record in status.steps:
        score = f" {record.normalized_score:.1f}" if record.normalized_score is not None else ""
        issues = f": {'; '.join(record.issues)}" if record.issues else ""
        if record.outcome == "bypassed":
            issues = f": {record.detail}"
        console.print(f"  {record.step.value:<20} {record.outcome}{score}{issues}", markup=False)
    if status.last_rejection:
        console.print(f"  last rejection: {status.last_rejection}", markup=False)
    if status.claim and status.claim.startswith("claim lost"):
        console.print(
            f"  {status.claim}: no handoff starts until `leo lifecycle reclaim {status.sd_key}`",
            markup=False,
        )


def print_demo_summary(
    console: Console,
    lifecycle: LifecycleStatus,
    results: list[HandoffResult],
    ui_url: str | None,
) -> None:
    table = Table(title="Summary", show_lines=False)
    for column in ("handoff", "outcome", "score / threshold", "sub-agents", "audit id"):
        table.add_column(column)
    for result in results:
        score = f"{result.normalized_score:.1f}" if result.normalized_score is not None else "n/a"
        table.add_row(
            result.handoff_type.value,
            result.outcome,
            f"{score} / {result.threshold:g}",
            f"{sum(a.ran for a in result.sub_agents)} ran, {result.sub_agent_verdict.verdict.value}",
            result.audit_id or "-",
        )
    console.print(table)
    console.print(
        f"SD-LIFECYCLE {lifecycle.state} for {lifecycle.sd_key}. "
        f"Audit trail: `leo audit {lifecycle.sd_key}`; history: "
        f"`temporal workflow list --query \"LeoSdId='{lifecycle.sd_id}'\"`",
        markup=False,
    )
    if ui_url:
        console.print(f"Web UI: {ui_url}/namespaces/default/workflows", markup=False)
    sys.stdout.flush()
