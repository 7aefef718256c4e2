"""Helpers for the workflow tests: start a handoff workflow, replay and record histories.

The replay corpus (tests/workflows/histories/, see its README.md) only grows: recording writes
`<workflow>-<shape>-<scenario>.json` and never replaces a file that exists. Record with
`bin/record-histories <shape>` (or `LEO_RECORD_HISTORIES=<shape>` around any test that calls
`check_replay`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

from leo.domain.handoff_messages import HandoffInput, HandoffResult
from leo.domain.handoffs import HandoffType, workflow_id_for
from leo.infra.failures import LEO_DATA_CONVERTER
from workflows.registry import HANDOFF_RUN, HANDOFF_WORKFLOWS
from workflows.sd_lifecycle import SdLifecycleWorkflow

ROOT = Path(__file__).resolve().parent.parent.parent
# Recorded histories, replayed by tests/workflows/test_lifecycle_and_replay.py.
HISTORIES = ROOT / "tests" / "workflows" / "histories"
ALL_WORKFLOWS = [*HANDOFF_WORKFLOWS.values(), SdLifecycleWorkflow]
RECORD_ENV = "LEO_RECORD_HISTORIES"
# Names are `<workflow>-<shape>-<scenario>.json`: workflow and scenario without "-".
SCENARIO = re.compile(r"^[a-z0-9][a-z0-9_]*$")
SHAPE = re.compile(r"^[a-z][a-z0-9_.]*$")
TABLE_START = "<!-- corpus: one row per file, added by the recorder -->"
TABLE_END = "<!-- end of corpus -->"


async def start_handoff(
    client: Client, task_queue: str, handoff: HandoffType, sd_id: str, **fields: Any
) -> WorkflowHandle[Any, HandoffResult]:
    run = HANDOFF_RUN[handoff]
    return await client.start_workflow(
        run,
        HandoffInput(sd_id=sd_id, **fields),
        id=workflow_id_for(handoff, sd_id),
        task_queue=task_queue,
    )


def recording_shape(environ: dict[str, str] | None = None) -> str | None:
    """The shape being recorded (`LEO_RECORD_HISTORIES=<shape>`), or None when not recording."""
    value = (os.environ if environ is None else environ).get(RECORD_ENV, "").strip()
    if not value:
        return None
    if not SHAPE.match(value):
        raise ValueError(
            f"{RECORD_ENV}={value!r}: name the code shape being recorded, in lower case "
            "letters, digits, '_' and '.', starting with a letter (for example "
            f"{RECORD_ENV}=lean_decide_once); it becomes part of each file name"
        )
    return value


def workflow_name(history: WorkflowHistory) -> str:
    """`PLAN-TO-EXEC` -> `plan_to_exec`, `SD-LIFECYCLE` -> `sd_lifecycle`."""
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name.lower().replace("-", "_")


def patches_in(history: WorkflowHistory) -> list[str]:
    """The patch ids this history's markers record, in order."""
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch" and "patch-data" in marker.details:
            [payload] = marker.details["patch-data"].payloads
            found.append(json.loads(payload.data)["id"])
    return found


def accepted_updates(history: WorkflowHistory) -> list[str]:
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


def ending(history: WorkflowHistory) -> str:
    """How the run ended: completed, continued_as_new, failed:<failure type>, or running."""
    last = history.events[-1]
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return "completed"
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return "continued_as_new"
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        failure = last.workflow_execution_failed_event_attributes.failure
        return f"failed:{failure.application_failure_info.type}"
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        return "cancelled"
    return "running"


def continued_from_another_run(history: WorkflowHistory) -> bool:
    started = history.events[0].workflow_execution_started_event_attributes
    return bool(started.continued_execution_run_id)


def load_history(path: Path) -> WorkflowHistory:
    record = json.loads(path.read_text())
    return WorkflowHistory.from_json(record["workflow_id"], record["history"])


def _code_version() -> str:
    """The commit the recording code is on, marked when workflow code differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "workflows", "activities", "leo", "db")
    return f"{commit} + uncommitted changes" if dirty else commit


def record_history(
    history: WorkflowHistory,
    scenario: str,
    shape: str,
    folder: Path = HISTORIES,
    *,
    code: str | None = None,
) -> Path | None:
    """Add `history` to the corpus as `<workflow>-<shape>-<scenario>.json` with a row in the
    folder's README.md; `code` names the commit that recorded it (default: this checkout's).
    Never overwrites: returns None (and writes nothing) when that file exists already."""
    if not SCENARIO.match(scenario):
        raise ValueError(f"scenario {scenario!r}: lower case letters, digits and '_' only")
    name = f"{workflow_name(history)}-{shape}-{scenario}.json"
    path = folder / name
    recorded = {
        "workflow": workflow_name(history),
        "shape": shape,
        "scenario": scenario,
        "code": code or _code_version(),
        "date": datetime.now(UTC).date().isoformat(),
        "patches": sorted(set(patches_in(history))),
        "ending": ending(history),
    }
    record = {"workflow_id": history.workflow_id, "recorded": recorded}
    record["history"] = history.to_json_dict()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x") as out:  # exclusive create: an existing file is never replaced
            out.write(json.dumps(record, indent=1) + "\n")
    except FileExistsError:
        return None
    _add_readme_row(folder / "README.md", name, recorded)
    return path


def _add_readme_row(readme: Path, name: str, recorded: dict[str, Any]) -> None:
    patches = ", ".join(f"`{p}`" for p in recorded["patches"]) or "none"
    row = (
        f"| `{name}` | {recorded['ending']} | {patches} | "
        f"`{recorded['code']}`, {recorded['date']} |"
    )
    if not readme.exists():
        readme.write_text(f"# Recorded histories\n\n{TABLE_START}\n{TABLE_END}\n")
    text = readme.read_text()
    head, rest = text.split(TABLE_START, 1)
    table, tail = rest.split(TABLE_END, 1)
    rows = [line for line in table.strip().splitlines() if line.startswith("| `")]
    header = [line for line in table.strip().splitlines() if not line.startswith("| `")]
    rows = sorted({*rows, row})
    body = "\n".join([*header, *rows])
    readme.write_text(f"{head}{TABLE_START}\n{body}\n{TABLE_END}{tail}")


def readme_files(folder: Path = HISTORIES) -> set[str]:
    """The file names the folder's README.md table lists."""
    text = (folder / "README.md").read_text()
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    return set(re.findall(r"^\| `([^`]+\.json)` \|", table, flags=re.MULTILINE))


async def check_replay(
    client: Client, workflow_id: str, scenario: str, *, run_id: str | None = None
) -> WorkflowHistory:
    """Replay a workflow run's history against this code (the latest run unless `run_id`
    names one). With LEO_RECORD_HISTORIES=<shape> set, also add it to the corpus as
    histories/<workflow>-<shape>-<scenario>.json unless that file exists."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=LEO_DATA_CONVERTER)
    await replayer.replay_workflow(history)
    shape = recording_shape()
    if shape is not None:
        record_history(history, scenario, shape)
    return history
