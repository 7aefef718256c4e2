"""Histories of an older release, for the replay corpus (tests/workflows/histories/README.md).

1. As a pytest plugin, run in a worktree of the old commit on that commit's own tests:

       git worktree add --detach /tmp/old <commit> && cd /tmp/old && bin/bootstrap
       LEO_DUMP_HISTORIES=/tmp/dump PYTHONPATH=<this repo>/tests/support \\
         .venv/bin/pytest -p release_histories <tests>

   After the session it writes every run on the session's dev server to
   `/tmp/dump/<test name>/<workflow type>-<run id>.json`, and every run on a dev server a test
   starts itself (before it stops) to `/tmp/dump/own-server-<port>/`.
2. From this repository, add the runs you chose to the corpus (never overwriting):

       .venv/bin/python -m tests.support.release_histories <dump>/<test name> <scenario> \\
         <shape> <commit> [--chain]

   `--chain` records the SD-LIFECYCLE runs of one continue-as-new chain as
   `continue_as_new_run<N>`; otherwise every run in the folder whose ending matches
   `--ending` (default: any) is recorded, and the folder must hold one per workflow type.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory

WINDOWS: list[tuple[str, datetime, datetime]] = []


async def _dump(client: Client, out: Path, windows: list[tuple[str, datetime, datetime]]) -> None:
    await asyncio.sleep(2)  # visibility
    async for wf in client.list_workflows():
        test = next((n for n, s, e in windows if s <= wf.start_time <= e), ".")
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        folder = out / test
        folder.mkdir(parents=True, exist_ok=True)
        record = {"workflow_id": wf.id, "history": history.to_json_dict()}
        (folder / f"{wf.workflow_type}-{wf.run_id}.json").write_text(json.dumps(record))


@pytest.fixture(autouse=True)
def _test_window(request: pytest.FixtureRequest) -> Any:
    start = datetime.now(UTC)
    yield
    WINDOWS.append((request.node.name, start, datetime.now(UTC)))


@pytest.fixture(scope="session", autouse=True)
async def _dump_session_server(client: Client) -> AsyncIterator[None]:
    yield
    await _dump(client, Path(os.environ["LEO_DUMP_HISTORIES"]), WINDOWS)


def _dump_own_servers() -> None:
    """Dump a test's own dev server before it stops (leo.stack in old releases)."""
    try:
        from leo import stack as module  # type: ignore[attr-defined]
    except ImportError:
        from leo import dev_stack as module
    stop = module.TemporalDevServer.stop

    def dumping_stop(self: Any) -> Any:
        async def dump() -> None:
            client = await Client.connect(self.address)
            out = Path(os.environ["LEO_DUMP_HISTORIES"]) / f"own-server-{self.port}"
            await _dump(client, out, [])

        thread = threading.Thread(target=lambda: asyncio.run(dump()))
        thread.start()
        thread.join()
        return stop(self)

    module.TemporalDevServer.stop = dumping_stop


if os.environ.get("LEO_DUMP_HISTORIES"):
    _dump_own_servers()


def main() -> None:
    from tests.support.workflows import (
        continued_from_another_run,
        ending,
        record_history,
        workflow_name,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("scenario")
    parser.add_argument("shape")
    parser.add_argument("commit")
    parser.add_argument("--chain", action="store_true")
    parser.add_argument("--ending", default=None, help="e.g. completed, failed:HandoffRejected")
    args = parser.parse_args()
    runs = {}
    for path in sorted(args.folder.glob("*.json")):
        record = json.loads(path.read_text())
        runs[path.stem] = WorkflowHistory.from_json(record["workflow_id"], record["history"])
    if args.chain:
        chain = {
            stem.removeprefix("SD-LIFECYCLE-"): h
            for stem, h in runs.items()
            if workflow_name(h) == "sd_lifecycle"
        }
        [first] = [h for h in chain.values() if not continued_from_another_run(h)]
        history: WorkflowHistory | None = first
        n = 0
        while history is not None:
            n += 1
            written = record_history(
                history, f"{args.scenario}_run{n}", args.shape, code=args.commit
            )
            print(f"run {n}: {ending(history)} -> {written.name if written else 'exists, kept'}")
            last = history.events[-1].workflow_execution_continued_as_new_event_attributes
            history = chain.get(last.new_execution_run_id)
        return
    chosen = [h for h in runs.values() if args.ending in (None, ending(h))]
    types = [workflow_name(h) for h in chosen]
    if len(types) != len(set(types)):
        parser.error(f"{args.folder} holds several runs of one workflow type: {sorted(types)}")
    for history in chosen:
        written = record_history(history, args.scenario, args.shape, code=args.commit)
        print(
            f"{workflow_name(history)}: {ending(history)} -> {written.name if written else 'exists, kept'}"
        )


if __name__ == "__main__":
    main()
