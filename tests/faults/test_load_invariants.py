"""Load: 200 concurrent handoff starts over 60 SDs, with duplicate and conflicting starts, on the
session worker; afterwards every SD satisfies the invariants in `tests/support/invariants.py`.

The starts mix the two ways in: `LeoClient.start_handoff` (idempotent: USE_EXISTING and
ALLOW_DUPLICATE_FAILED_ONLY) and raw `client.start_workflow` with other options (the default
FAIL conflict policy, TERMINATE_EXISTING, a non-canonical workflow id, a different options
payload), plus handoffs of the wrong type for the SD's phase and ones whose gates reject.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from leo.api import HandoffFailed, LeoClient
from leo.domain.handoff_messages import HandoffInput, HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType, workflow_id_for
from tests.support.factories import SdFixture, add_agent, create_sd
from tests.support.invariants import assert_invariants
from workflows.registry import HANDOFF_RUN

L2P = HandoffType.LEAD_TO_PLAN
P2E = HandoffType.PLAN_TO_EXEC
# Evidence the PLAN-TO-EXEC gates and sub-agents of an infrastructure SD look for.
EVIDENCE = {
    "risks": [{"risk": "r", "mitigation": "m"}],
    "commits": ["abc"],
    "security_findings": [],
}
SEED = 20260601

Start = Callable[[], Awaitable[WorkflowHandle[Any, HandoffResult]]]


async def chain_sd(pool: asyncpg.Pool, **kw: Any) -> SdFixture:
    """An SD whose LEAD-TO-PLAN and PLAN-TO-EXEC both pass their gates."""
    return await create_sd(
        pool,
        ready_for="LEAD-TO-PLAN",
        sd_type="infrastructure",
        metadata=EVIDENCE,
        with_prd=True,
        stories=[{"status": "ready"}],
        **kw,
    )


async def outcome(leo: LeoClient, start: Start) -> tuple[str, str | None]:
    """(outcome, workflow id): accepted, rejected, a refusal code, or how the start failed."""
    try:
        handle = await start()
    except WorkflowAlreadyStartedError:
        return "start refused: already running", None
    except HandoffFailed as exc:
        return f"start refused: {exc.code}", None
    try:
        result = await leo.wait(handle)
    except HandoffFailed as exc:
        return exc.code or "terminated", handle.id
    return result.outcome, handle.id


@pytest.mark.slow
async def test_200_concurrent_conflicting_starts_leave_every_sd_consistent(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    rng = random.Random(SEED)
    print(f"load seed {SEED}")
    slow_agent = await add_agent(db_pool, metadata={"seconds": 0.5})
    chain = [await chain_sd(db_pool) for _ in range(30)]
    terminated = [await chain_sd(db_pool) for _ in range(10)]
    uuid_ids = [await chain_sd(db_pool, uuid_id=True) for _ in range(10)]
    refused = [await chain_sd(db_pool, description="") for _ in range(10)]
    all_sds = chain + terminated + uuid_ids + refused

    def leo_start(
        handoff: HandoffType, sd_ref: str, *, delay: float = 0.0, **options: Any
    ) -> Start:
        async def start() -> WorkflowHandle[Any, HandoffResult]:
            await asyncio.sleep(delay)
            return await leo.start_handoff(
                handoff, sd_ref, options=HandoffOptions(**options) if options else None
            )

        return start

    def raw_start(
        handoff: HandoffType,
        sd_ref: str,
        *,
        workflow_id: str | None = None,
        delay: float = 0.0,
        **kwargs: Any,
    ) -> Start:
        options = kwargs.pop("options", HandoffOptions())

        async def start() -> WorkflowHandle[Any, HandoffResult]:
            await asyncio.sleep(delay)
            return await client.start_workflow(
                HANDOFF_RUN[handoff],
                HandoffInput(sd_id=sd_ref, options=options),
                id=workflow_id or workflow_id_for(handoff, sd_ref),
                task_queue=task_queue,
                **kwargs,
            )

        return start

    starts: list[tuple[str, Start]] = []
    for n, sd in enumerate(chain):
        starts += [
            ("chain L2P by key", leo_start(L2P, sd.sd_key)),
            ("chain L2P by id", leo_start(L2P, sd.id)),
            (
                "chain L2P raw, other options",
                raw_start(
                    L2P,
                    sd.id,
                    options=HandoffOptions(extra_sub_agents=["DOCMON"]),
                    id_conflict_policy=(
                        WorkflowIDConflictPolicy.USE_EXISTING
                        if n % 2
                        else WorkflowIDConflictPolicy.FAIL
                    ),
                ),
            ),
            ("chain P2E too early", leo_start(P2E, sd.id)),
        ]
    for sd in terminated:
        starts += [
            ("terminate: first", leo_start(L2P, sd.id, extra_sub_agents=[slow_agent])),
            (
                "terminate: TERMINATE_EXISTING",
                raw_start(
                    L2P,
                    sd.id,
                    delay=rng.uniform(0.0, 1.5),
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                ),
            ),
            ("terminate: attach", leo_start(L2P, sd.id, delay=rng.uniform(0.0, 1.5))),
        ]
    for sd in uuid_ids:
        starts += [
            ("uuid L2P by key", leo_start(L2P, sd.sd_key)),
            (
                "uuid raw, id from sd_key",
                raw_start(L2P, sd.sd_key, workflow_id=workflow_id_for(L2P, sd.sd_key)),
            ),
            ("uuid L2P by id", leo_start(L2P, sd.id)),
        ]
    for sd in refused:
        starts += [
            ("wrong phase E2P", leo_start(HandoffType.EXEC_TO_PLAN, sd.id)),
            ("rejected L2P", leo_start(L2P, sd.id)),
        ]
    assert len(starts) == 200
    rng.shuffle(starts)

    began = time.monotonic()
    async with asyncio.timeout(120):
        results = await asyncio.gather(*(outcome(leo, start) for _, start in starts))
    first_wave = time.monotonic() - began
    tally = Counter(
        (label, result) for (label, _), (result, _) in zip(starts, results, strict=True)
    )
    for (label, result), n in sorted(tally.items()):
        print(f"  {n:4d}  {label:32s} -> {result}")
    print(f"200 starts settled in {first_wave:.1f} s")

    by_label: dict[str, set[str]] = {}
    for (label, _), (result, _) in zip(starts, results, strict=True):
        by_label.setdefault(label, set()).add(result)
    # Deterministic outcomes (the racy ones only have to leave the database consistent).
    assert by_label["chain L2P by key"] == {"accepted"}
    assert by_label["chain L2P by id"] == {"accepted"}
    assert by_label["uuid L2P by key"] == by_label["uuid L2P by id"] == {"accepted"}
    # Refused either way, before any sub-agent runs: by the id check, or by the preflight
    # when the canonical run has already moved the SD on.
    assert by_label["uuid raw, id from sd_key"] <= {"WRONG_WORKFLOW_ID", "INVALID_PHASE"}
    assert by_label["rejected L2P"] == {"rejected"}
    assert by_label["chain L2P raw, other options"] <= {
        "accepted",
        "start refused: already running",
    }
    # A handoff in the wrong phase is refused, never rejected, even while another run holds
    # the SD's lock (test_a_wrong_phase_handoff_is_refused_even_while_the_sd_is_locked).
    assert by_label["wrong phase E2P"] == {"INVALID_PHASE"}
    # Racy only in which way it goes: too early (refused) or after LEAD-TO-PLAN (accepted).
    assert by_label["chain P2E too early"] <= {"INVALID_PHASE", "accepted"}
    terminate_outcomes = {"accepted", "terminated", "INVALID_PHASE", "VERSION_CONFLICT"}
    assert by_label["terminate: first"] <= terminate_outcomes
    assert by_label["terminate: attach"] <= terminate_outcomes
    assert by_label["terminate: TERMINATE_EXISTING"] <= terminate_outcomes

    # Every workflow any start touched is closed: nothing hangs, nothing is left running.
    for workflow_id in {wid for _, wid in results if wid}:
        description = await client.get_workflow_handle(workflow_id).describe()
        assert description.status != WorkflowExecutionStatus.RUNNING, workflow_id

    # The chain continues: PLAN-TO-EXEC on every chain SD, where the early start was refused.
    async with asyncio.timeout(60):
        follow = await asyncio.gather(*(leo.run_handoff(P2E, sd.id) for sd in chain))
    assert {r.outcome for r in follow} == {"accepted"}
    print(f"all done in {time.monotonic() - began:.1f} s")

    phases = {
        r["id"]: (r["current_phase"], r["transition_version"])
        for r in await db_pool.fetch(
            "SELECT id, current_phase, transition_version FROM strategic_directives_v2 "
            "WHERE id = ANY($1::text[])",
            [sd.id for sd in all_sds],
        )
    }
    assert {phases[sd.id] for sd in chain} == {("EXEC", 3)}
    # Whichever run committed (the terminated one's activity may have), it committed once.
    assert {phases[sd.id] for sd in terminated + uuid_ids} == {("PLAN_PRD", 2)}
    assert {phases[sd.id] for sd in refused} == {("LEAD_APPROVAL", 1)}
    # Exactly the one rejected LEAD-TO-PLAN per SD: the wrong-phase starts wrote nothing.
    handoff_rows = await db_pool.fetch(
        "SELECT sd_id, handoff_type, status FROM sd_phase_handoffs WHERE sd_id = ANY($1::text[])",
        [sd.id for sd in refused],
    )
    assert sorted(tuple(r) for r in handoff_rows) == sorted(
        (sd.id, "LEAD-TO-PLAN", "rejected") for sd in refused
    )

    await assert_invariants(db_pool, [sd.id for sd in all_sds])
    # The runs under a non-canonical id (the sd_key of a UUID-keyed SD) wrote nothing.
    for sd in uuid_ids:
        assert not await db_pool.fetchval(
            "SELECT count(*) FROM sd_transition_audit WHERE request_id LIKE $1",
            f"{workflow_id_for(L2P, sd.sd_key)}/%",
        )


async def test_a_wrong_phase_handoff_is_refused_even_while_the_sd_is_locked(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    # The load test above hits this by chance; holding the SD's advisory lock (what a running
    # transition or a concurrent preflight does for a few ms) reproduces it every time.
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    async with db_pool.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock(leo_sd_lock_key($1))", sd.id)
        try:
            handle = await leo.start_handoff(HandoffType.EXEC_TO_PLAN, sd.id)
            await asyncio.sleep(1.5)
        finally:
            await holder.execute("SELECT pg_advisory_unlock(leo_sd_lock_key($1))", sd.id)
    try:
        async with asyncio.timeout(30):
            result = await leo.wait(handle)
    except HandoffFailed as refused:
        code = refused.code
    else:
        code = f"finished as {result.outcome}"
    rows = await db_pool.fetch(
        "SELECT handoff_type, status FROM sd_phase_handoffs WHERE sd_id = $1", sd.id
    )
    assert code == "INVALID_PHASE", [dict(r) for r in rows]
    assert rows == []
