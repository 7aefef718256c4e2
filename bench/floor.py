"""The platform floor: a bare Temporal workflow whose activities only sleep.

What Temporal alone costs on this server, measured in the same run as our handoffs. The
default shape is 5 parallel activities (`FloorInput()`); `before`/`after` add sequential
activities around the parallel stage, so `FloorInput(before=1, parallel=7, after=1)` is the
shape of a handoff (snapshot -> sub-agents -> commit) with nothing of ours inside, and
`local=True` runs the sequential steps as local activities (a what-if for that shape).

This module is imported inside the workflow sandbox: it must never import asyncpg or any of
the project's database code.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

FLOOR_ACTIVITY_TIMEOUT = timedelta(seconds=60)


@dataclass
class FloorInput:
    parallel: int = 5
    seconds: float = 0.0
    before: int = 0
    after: int = 0
    # Run the `before`/`after` steps as local activities (inside the workflow task).
    local: bool = False


@activity.defn(name="bench_floor_sleep")
async def floor_sleep(seconds: float) -> float:
    if seconds > 0:
        await asyncio.sleep(seconds)
    return seconds


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    @workflow.run
    async def run(self, request: FloorInput) -> int:
        done = 0
        for _ in range(request.before):
            await self._step(request.local)
            done += 1
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    floor_sleep, request.seconds, start_to_close_timeout=FLOOR_ACTIVITY_TIMEOUT
                )
                for _ in range(request.parallel)
            )
        )
        done += request.parallel
        for _ in range(request.after):
            await self._step(request.local)
            done += 1
        return done

    @staticmethod
    async def _step(local: bool) -> None:
        if local:
            await workflow.execute_local_activity(
                floor_sleep, 0.0, start_to_close_timeout=FLOOR_ACTIVITY_TIMEOUT
            )
        else:
            await workflow.execute_activity(
                floor_sleep, 0.0, start_to_close_timeout=FLOOR_ACTIVITY_TIMEOUT
            )


def build_floor_worker(client: Client, task_queue: str, **worker_options: Any) -> Worker:
    """The floor's own worker on its own task queue, with the SDK's defaults (as production);
    `worker_options` go to `Worker` as they are."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[FloorWorkflow],
        activities=[floor_sleep],
        **worker_options,
    )


async def run_floor(client: Client, task_queue: str, request: FloorInput | None = None) -> int:
    """One floor workflow, start to result; returns how many activities it ran."""
    return await client.execute_workflow(
        FloorWorkflow.run,
        request or FloorInput(),
        id=f"bench-floor-{uuid.uuid4().hex}",
        task_queue=task_queue,
    )
