"""What the `leo` commands print: the consoles, JSON documents, and the readable views of the
stack, migrations, SDs, status and the audit trail (`leo.cli.render_runs` has those of handoffs,
the lifecycle and the demo).

Data goes to stdout: readable tables, or with `--json` one JSON document and nothing else.
Notes and progress go to stderr. No function here talks to a server.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from db.migrate import MigrationReport
from db.sd_history import AuditTrail, SdStatus
from db.sds import SdDetails
from leo.cli.render_edits import render_edits
from leo.dev_stack import Stack
from leo.infra.settings import Settings, redact_url

ERROR_RECORD_FIELDS = (
    "failed_step",
    "error_code",
    "error_message",
    "error_detail",
    "recovery_action",
)
ORIGIN_NOTES = {
    "postgres": {
        "configured": "from LEO_DATABASE_URL",
        "reused": "embedded, already running",
        "started": "embedded, started here",
    },
    "temporal": {
        "configured": "from TEMPORAL_ADDRESS",
        "reused": "dev server, already running",
        "started": "dev server, started here",
    },
}


def stdout() -> Console:
    # Wide when piped too, so that ids and URLs in tables stay whole.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any, *, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fields(rows: list[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, escape(value))
    return grid


def bullets(items: list[Any]) -> str:
    return "\n".join(f"- {item if isinstance(item, str) else json.dumps(item)}" for item in items)


# --- leo dev / leo db migrate -------------------------------------------------------------------


def origin(external: bool, reused: bool) -> str:
    if external:
        return "configured"
    return "reused" if reused else "started"


def print_dev_summary(
    stack: Stack, settings: Settings, report: MigrationReport, *, as_json: bool
) -> None:
    postgres = origin(stack.postgres is None, bool(stack.postgres and stack.postgres.reused))
    temporal = origin(stack.temporal is None, bool(stack.temporal and stack.temporal.reused))
    if as_json:
        print_json(
            {
                "temporal_address": stack.temporal_address,
                "temporal_namespace": settings.temporal_namespace,
                "ui_url": stack.ui_url,
                "database_url": redact_url(stack.database_url),
                "data_dir": str(stack.data_dir),
                "task_queue": settings.task_queue,
                "postgres": postgres,
                "temporal": temporal,
                "migrations_applied": report.applied,
            },
            indent=None,
        )
        return
    console = stdout()
    console.print("[bold green]LEO dev stack is up[/bold green]")
    migrations = f"applied {', '.join(report.applied)}" if report.applied else "up to date"
    ui = "served by the Temporal server at TEMPORAL_ADDRESS"
    if stack.temporal is not None:
        ui = stack.ui_url or "off (--headless)"
    rows = [
        (
            "Temporal",
            stack.temporal_address,
            f"{ORIGIN_NOTES['temporal'][temporal]}; namespace {settings.temporal_namespace}",
        ),
        ("Web UI", ui, ""),
        ("Database", redact_url(stack.database_url), ORIGIN_NOTES["postgres"][postgres]),
        ("Data dir", str(stack.data_dir), ""),
        ("Task queue", settings.task_queue, ""),
        ("Migrations", migrations, ""),
    ]
    logs = []
    if stack.temporal is not None:
        logs.append(str(stack.temporal.log_file))
    if stack.postgres is not None:
        logs.append(str(stack.postgres.pgdata / "log"))
    if logs:
        rows.append(("Logs", ", ".join(logs), ""))
    for label, value, note in rows:
        # soft_wrap: URLs stay on one line, so they can be copied.
        console.print(
            f"  [bold]{label:<11}[/bold] {escape(value)}"
            + (f"  [dim]({escape(note)})[/dim]" if note else ""),
            soft_wrap=True,
        )
    exports = []
    if stack.temporal is not None:
        exports.append(f"export TEMPORAL_ADDRESS={shlex.quote(stack.temporal_address)}")
    if stack.postgres is not None:
        exports.append(f"export LEO_DATABASE_URL={shlex.quote(stack.database_url)}")
    if exports:
        console.print("\nTo use it from another shell:")
        for line in exports:
            console.print(f"  {escape(line)}", soft_wrap=True)
    console.print("\nPress Ctrl-C to stop.")
    sys.stdout.flush()


def print_migration(report: MigrationReport, target: str, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "database_url": target,
                "applied": report.applied,
                "functions_applied": report.functions_applied,
                "up_to_date": not report.changed,
            }
        )
        return
    console = stdout()
    for name in report.applied:
        console.print(f"Applied {escape(name)}")
    if report.functions_applied:
        console.print("Applied the SQL functions (db/functions)")
    if not report.changed:
        console.print("Database is up to date.")
    console.print(f"[dim]{escape(target)}[/dim]", soft_wrap=True)


# --- leo sd / status / audit --------------------------------------------------------------------


def print_created_sd(console: Console, details: SdDetails) -> None:
    stories = len(details.stories)
    console.print(
        f"Created [bold]{escape(details.sd.sd_key)}[/bold]"
        + (f" (id {escape(details.sd.id)})" if details.sd.id != details.sd.sd_key else "")
        + f" with {'a PRD' if details.prd else 'no PRD'} and {stories} "
        + ("story" if stories == 1 else "stories")
        + "."
    )
    render_sd(console, details)


def render_sd(console: Console, details: SdDetails) -> None:
    sd = details.sd
    console.print(f"\n[bold]{escape(sd.sd_key)}[/bold]  {escape(sd.title)}")
    rows = []
    if sd.id != sd.sd_key:
        rows.append(("id", sd.id))
    rows += [
        ("type", sd.sd_type),
        ("status / phase", f"{sd.status} / {sd.current_phase}"),
        ("priority", sd.priority),
        ("version", str(sd.transition_version)),
        ("progress", f"{sd.progress_percentage}%"),
        ("claimed by", sd.claiming_session_id or "-"),
    ]
    optional = [
        ("category", sd.category),
        ("intensity", sd.intensity_level),
        ("application", sd.target_application),
        ("description", sd.description),
        ("scope", sd.scope),
        ("rationale", sd.rationale),
        ("success criteria", bullets(sd.success_criteria)),
        ("success metrics", bullets(sd.success_metrics)),
    ]
    rows += [(label, value) for label, value in optional if value]
    rows += [("created", when(sd.created_at)), ("updated", when(sd.updated_at))]
    console.print(fields(rows))

    prd = details.prd
    if prd is None:
        console.print("\nNo PRD yet.")
    else:
        prd_rows = [
            ("title", prd.title),
            ("status / phase", f"{prd.status} / {prd.phase}"),
            ("progress", f"{prd.progress}%"),
        ]
        if prd.executive_summary:
            prd_rows.append(("summary", prd.executive_summary))
        if prd.functional_requirements:
            prd_rows.append(("requirements", bullets(prd.functional_requirements)))
        if prd.test_scenarios:
            prd_rows.append(("test scenarios", bullets(prd.test_scenarios)))
        console.print(Panel(fields(prd_rows), title=f"PRD {escape(prd.id)}", title_align="left"))

    if not details.stories:
        console.print("No user stories.")
        return
    table = Table(title=f"User stories ({len(details.stories)})", title_justify="left")
    table.add_column("Key", no_wrap=True)
    for column in ("Title", "Status", "Validation", "E2E test"):
        table.add_column(column, overflow="fold")
    for story in details.stories:
        table.add_row(
            escape(story.story_key),
            escape(story.title),
            story.status,
            story.validation_status,
            story.e2e_test_status
            + (f" ({escape(story.e2e_test_path)})" if story.e2e_test_path else ""),
        )
    console.print(table)


def render_status(console: Console, st: SdStatus) -> None:
    console.print(f"[bold]{escape(st.sd_key)}[/bold]  {escape(st.title)}")
    claim = "none"
    if st.claim is not None:
        c = st.claim
        claim = (
            f"{c.session_id} ({c.computed_status}, heartbeat {c.heartbeat_age_seconds} s ago"
            + (f", track {c.track}" if c.track else "")
            + ")"
        )
    rows = []
    if st.sd_id != st.sd_key:
        rows.append(("id", st.sd_id))
    rows += [
        ("type", st.sd_type),
        ("status", st.status),
        ("phase", st.current_phase),
        ("version", str(st.transition_version)),
        ("progress", f"{st.progress_percentage}%"),
        ("working on", "yes" if st.is_working_on else "no"),
        ("claim", claim),
    ]
    console.print(fields(rows))
    if not st.handoffs:
        console.print("\nNo handoffs yet.")
        return
    table = Table(title="Latest handoffs (newest first)", title_justify="left")
    for column in ("When", "Handoff", "From -> To", "Status", "Score", "Request id"):
        table.add_column(column, overflow="fold")
    for h in st.handoffs:
        score = "-" if h.validation_score is None else f"{h.validation_score:g}"
        outcome = h.status + (f": {h.rejection_reason}" if h.rejection_reason else "")
        if h.is_bypass:
            # Never shown as an acceptance: nobody's gates judged it.
            score = "no gates"
            outcome = (
                f"BYPASSED by {h.actor} (database role {h.db_role or 'unknown'}): {h.bypass_reason}"
            )
        table.add_row(
            when(h.created_at),
            h.handoff_type,
            f"{h.from_phase} -> {h.to_phase}",
            escape(outcome),
            score,
            escape(h.request_id),
        )
    console.print(table)


def render_audit(console: Console, trail: AuditTrail) -> None:
    failed = [e for e in trail.entries if e.status == "failed"]
    bypassed = [e for e in trail.entries if e.transition_type == "BYPASS-COMPLETION"]
    console.print(
        f"[bold]Audit trail of {escape(trail.sd_key)}[/bold]: {len(trail.entries)} "
        f"{'attempt' if len(trail.entries) == 1 else 'attempts'}, {len(failed)} failed, "
        + (f"{len(bypassed)} BYPASSED (completed with no gates), " if bypassed else "")
        + f"{len(trail.edits)} {'edit' if len(trail.edits) == 1 else 'edits'}"
    )
    if trail.entries:
        render_attempts(console, trail)
    render_edits(console, trail.edits)


def render_attempts(console: Console, trail: AuditTrail) -> None:
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("Started", no_wrap=True)
    table.add_column("Transition", no_wrap=True)
    table.add_column("Status")
    table.add_column("SD phase", overflow="fold")
    table.add_column("Version")
    table.add_column("Audit id", no_wrap=True)
    table.add_column("Request id", overflow="fold")
    for n, entry in enumerate(trail.entries, start=1):
        bypass = entry.transition_type == "BYPASS-COMPLETION"
        post = entry.post_state or {}
        pre = entry.pre_state
        phase = (
            f"{pre.get('sd_phase', '?')} -> {post['sd_phase']}"
            if "sd_phase" in post
            else str(pre.get("sd_phase", "?"))
        )
        version = (
            f"{pre.get('sd_version', '?')} -> {post['sd_version']}"
            if "sd_version" in post
            else str(pre.get("sd_version", "?"))
        )
        table.add_row(
            str(n),
            when(entry.started_at),
            entry.transition_type,
            "BYPASSED" if bypass else entry.status,
            phase,
            version,
            str(entry.id),
            escape(entry.request_id),
            style="red" if entry.status == "failed" else ("yellow" if bypass else None),
        )
    console.print(table)
    for n, entry in enumerate(trail.entries, start=1):
        if entry.transition_type == "BYPASS-COMPLETION":
            console.print(
                Panel(
                    fields(
                        [
                            ("actor", entry.actor or "-"),
                            ("database role", entry.db_role or "unknown"),
                            ("reason", entry.bypass_reason or "-"),
                        ]
                    ),
                    title=f"Attempt #{n}: BYPASSED, completed with no gates, audit {entry.id}",
                    title_align="left",
                    border_style="yellow",
                )
            )
        if entry.status != "failed":
            continue
        details = entry.error_details or {}
        rows = [(name, str(details[name])) for name in ERROR_RECORD_FIELDS if details.get(name)]
        rows.append(("database role", entry.db_role or "unknown"))
        console.print(
            Panel(
                fields(rows),
                title=f"Failed attempt #{n}: {entry.transition_type}, audit {entry.id}",
                title_align="left",
                border_style="red",
            )
        )
