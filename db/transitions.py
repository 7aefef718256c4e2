"""The thin Python side of the atomic transition functions: one call, one typed result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from leo.domain.gates import GateSummary
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import RefusalCode

if TYPE_CHECKING:
    # Only for annotations: this module's models are imported by workflow code, and asyncpg
    # must never be imported inside the workflow sandbox (docs/temporal-notes.md, trap 1).
    from db.pool import Executor


class TransitionContext(BaseModel):
    """`p_transition_context`: the idempotency key, the expected version, the gate summary."""

    request_id: str = Field(min_length=1, max_length=300)
    expected_version: int | None = Field(default=None, ge=1)
    gate_summary: GateSummary | None = None
    rejection_reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TransitionResult(BaseModel):
    """The jsonb a transition function returns, typed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    success: bool
    code: RefusalCode
    error: str | None = None
    handoff_type: str | None = None
    request_id: str | None = None
    sd_id: str | None = None
    sd_key: str | None = None
    audit_id: UUID | None = None
    handoff_id: UUID | None = None
    transition_version: int | None = None
    idempotent_hit: bool = False
    pre_state: dict[str, Any] | None = None
    post_state: dict[str, Any] | None = None
    error_details: dict[str, Any] | None = None
    expected: str | None = None
    actual: dict[str, Any] | None = None


async def call_transition(
    conn: Executor,
    handoff: HandoffType,
    *,
    sd_id: str,
    context: TransitionContext,
    prd_id: str | None = None,
    session_id: str | None = None,
) -> TransitionResult:
    """Run one handoff's atomic transition. Never raises for a refusal; read `.code`."""
    # The function name comes from the enum, never from caller input; values are bound.
    sql = (
        f"SELECT {handoff.function_name}(p_sd_id => $1, p_prd_id => $2, "
        "p_session_id => $3, p_transition_context => $4)"
    )
    raw = await conn.fetchval(
        sql, sd_id, prd_id, session_id, context.model_dump(mode="json", exclude_none=True)
    )
    return TransitionResult.model_validate(raw)


async def record_rejection(
    conn: Executor,
    handoff: HandoffType,
    *,
    sd_id: str,
    context: TransitionContext,
    session_id: str | None = None,
) -> dict[str, Any]:
    raw = await conn.fetchval(
        "SELECT fn_record_handoff_rejection(p_sd_id => $1, p_handoff_type => $2, "
        "p_session_id => $3, p_transition_context => $4)",
        sd_id,
        handoff.value,
        session_id,
        context.model_dump(mode="json", exclude_none=True),
    )
    if not isinstance(raw, dict):
        raise TypeError(
            f"fn_record_handoff_rejection returned {raw!r} for {handoff.value} on {sd_id}, "
            "not a result object"
        )
    return raw
