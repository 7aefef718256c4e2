"""A handoff's accepted record, looked up directly, for a start of a handoff that already passed.

Whatever happened to the SD since (it moved on, another session claims it), starting an
accepted handoff again returns the accepted result; it never runs the transition again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from db.snapshots import read_accepted_handoff
from leo.domain.gates import GateOutcome
from leo.domain.handoffs import HandoffType
from leo.domain.snapshot import AcceptedRecord

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy


def _gates(details: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    # Only well-formed gate outcomes: the workflow rebuilds GateOutcome from them.
    gates = []
    for raw in details.get("gate_results") or ():
        try:
            gates.append(GateOutcome.model_validate(raw).model_dump(mode="json"))
        except ValidationError:
            continue
    return tuple(gates)


async def find_accepted_handoff(
    conn: asyncpg.Connection | PoolConnectionProxy, handoff: HandoffType, sd_id: str
) -> AcceptedRecord | None:
    row = await read_accepted_handoff(conn, sd_id, handoff.value)
    return None if row is None else accepted_record(row)


def accepted_record(row: Any) -> AcceptedRecord:
    """The record from its row (db/snapshots.py ACCEPTED_HANDOFF_SQL's columns)."""
    details: dict[str, Any] = row["validation_details"] or {}
    metadata: dict[str, Any] = row["metadata"] or {}
    result: dict[str, Any] = row["result"] or {}
    post: dict[str, Any] = result.get("post_state") or {}
    threshold = details.get("threshold")
    sub_agents = metadata.get("sub_agents")
    return AcceptedRecord(
        handoff_id=row["handoff_id"],
        audit_id=row["audit_id"],
        request_id=row["request_id"],
        normalized_score=row["validation_score"],
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        gates=_gates(details),
        sub_agent_verdict=details.get("sub_agent_verdict"),
        sub_agents=sub_agents if isinstance(sub_agents, dict) else {},
        transition_version=result.get("transition_version"),
        new_phase=post.get("sd_phase"),
        new_status=post.get("sd_status"),
        previous_phase=(result.get("pre_state") or {}).get("sd_phase"),
        workflow_id=metadata.get("workflow_id"),
        run_id=metadata.get("run_id"),
        accepted_at=row["accepted_at"],
    )
