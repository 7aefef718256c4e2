"""Rows for the tests (SDs, PRDs, stories, handoff records, catalogue agents): every test makes
its own, so tests never share rows."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

# SD status / phase each handoff starts from (the precondition of its transition function).
START_STATE = {
    "LEAD-TO-PLAN": ("draft", "LEAD_APPROVAL", "draft"),
    "PLAN-TO-EXEC": ("in_progress", "PLAN_PRD", "draft"),
    "EXEC-TO-PLAN": ("active", "EXEC", "in_progress"),
    "PLAN-TO-LEAD": ("active", "EXEC_COMPLETE", "verification"),
    "LEAD-FINAL-APPROVAL": ("pending_approval", "LEAD_FINAL", "completed"),
}


@dataclass(frozen=True)
class SdFixture:
    id: str
    sd_key: str
    prd_id: str | None
    story_keys: tuple[str, ...]


def unique_key(prefix: str = "SD-TEST") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


async def create_sd(
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    ready_for: str | None = None,
    status: str = "draft",
    phase: str = "LEAD_APPROVAL",
    sd_type: str = "feature",
    with_prd: bool = False,
    prd_status: str = "draft",
    stories: list[dict[str, Any]] | None = None,
    uuid_id: bool = False,
    **columns: Any,
) -> SdFixture:
    """An SD (plus PRD and stories if asked) in the state `ready_for` a handoff starts from."""
    if ready_for is not None:
        status, phase, prd_status = START_STATE[ready_for]
        with_prd = with_prd or ready_for != "LEAD-TO-PLAN"
    key = unique_key()
    sd_id = str(uuid.uuid4()) if uuid_id else key
    defaults: dict[str, Any] = {
        "title": f"Test directive {key}",
        "description": "A directive created by the test suite.",
        "scope": "Test scope",
        "success_criteria": ["it works"],
    }
    defaults.update(columns)
    names = ["id", "sd_key", "sd_type", "status", "current_phase", *defaults]
    values = [sd_id, key, sd_type, status, phase, *defaults.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await pool.execute(
        f"INSERT INTO strategic_directives_v2 ({', '.join(names)}) VALUES ({placeholders})",
        *values,
    )
    prd_id = None
    if with_prd:
        prd_id = f"PRD-{key}"
        await pool.execute(
            "INSERT INTO product_requirements_v2 (id, sd_id, title, status) VALUES ($1, $2, $3, $4)",
            prd_id,
            sd_id,
            f"PRD for {key}",
            prd_status,
        )
    story_keys = []
    for n, story in enumerate(stories or [], start=1):
        story_key = f"{key}:US-{n:03d}"
        story_keys.append(story_key)
        await pool.execute(
            "INSERT INTO user_stories (story_key, sd_id, prd_id, title, status, e2e_test_path, "
            "acceptance_criteria, e2e_test_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            story_key,
            sd_id,
            prd_id,
            story.get("title", f"Story {n}"),
            story.get("status", "in_progress"),
            story.get("e2e_test_path"),
            story.get("acceptance_criteria", ["given/when/then"]),
            story.get("e2e_test_status", "not_created"),
        )
    return SdFixture(sd_id, key, prd_id, tuple(story_keys))


# handoff type -> (from_phase, to_phase) of its sd_phase_handoffs row, in chain order.
HANDOFF_PHASES: dict[str, tuple[str, str]] = {
    "LEAD-TO-PLAN": ("LEAD", "PLAN"),
    "PLAN-TO-EXEC": ("PLAN", "EXEC"),
    "EXEC-TO-PLAN": ("EXEC", "PLAN"),
    "PLAN-TO-LEAD": ("PLAN", "LEAD"),
    "LEAD-FINAL-APPROVAL": ("LEAD", "COMPLETED"),
}


async def seed_accepted_handoff(
    pool: asyncpg.Pool | asyncpg.Connection,
    sd_id: str,
    handoff_type: str,
    score: float | None = None,
) -> None:
    """An accepted handoff record, as an earlier handoff would have left it (for prerequisites)."""
    from_phase, to_phase = HANDOFF_PHASES[handoff_type]
    await pool.execute(
        "INSERT INTO sd_phase_handoffs (sd_id, handoff_type, from_phase, to_phase, status, "
        "request_id, validation_score) VALUES ($1, $2, $3, $4, 'accepted', $5, $6)",
        sd_id,
        handoff_type,
        from_phase,
        to_phase,
        f"seed-{handoff_type}-{sd_id}",
        score,
    )


async def add_agent(
    pool: asyncpg.Pool,
    *,
    kind: str = "python",
    ref: Any = "tests.support.agents:sleep_then_pass",
    priority: int = 50,
    depends_on: list[str] | None = None,
    timeout: float = 60,
    metadata: dict[str, Any] | None = None,
    prefix: str = "T",
) -> str:
    """A catalogue row with a unique code, so tests never share agents."""
    code = f"{prefix}_{uuid.uuid4().hex[:8].upper()}"
    await pool.execute(
        "INSERT INTO leo_sub_agents (code, name, priority, depends_on, timeout_seconds, "
        "executor_kind, executor_ref, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        code,
        f"Test agent {code}",
        priority,
        depends_on or [],
        timeout,
        kind,
        json.loads(json.dumps(ref)),
        metadata or {},
    )
    return code
