"""The sub-agent catalogue (`leo_sub_agents`): registering agents outside the migrations."""

from __future__ import annotations

from db.pool import Executor


async def upsert_command_sub_agent(
    conn: Executor,
    *,
    code: str,
    name: str,
    timeout_seconds: float,
    argv: list[str],
    input_parts: list[str] | None = None,
    reuse_fingerprint: list[str] | None = None,
) -> None:
    """Add a `command` sub-agent (priority 60) or update the one with this code, and activate it.

    A command agent's result is reused (within its time bucket, on the same input) only when
    it has a `reuse_fingerprint`: the argv of a command whose output fingerprints the world its
    verdict depends on (docs/sub-agents.md)."""
    await conn.execute(
        "INSERT INTO leo_sub_agents (code, name, priority, timeout_seconds, executor_kind, "
        "executor_ref, input_parts, reuse_fingerprint) "
        "VALUES ($1, $2, 60, $3, 'command', $4, $5, $6) ON CONFLICT (code) DO UPDATE "
        "SET name = EXCLUDED.name, timeout_seconds = EXCLUDED.timeout_seconds, "
        "executor_kind = 'command', executor_ref = EXCLUDED.executor_ref, "
        "input_parts = EXCLUDED.input_parts, reuse_fingerprint = EXCLUDED.reuse_fingerprint, "
        "active = true",
        code,
        name,
        timeout_seconds,
        argv,
        input_parts,
        reuse_fingerprint,
    )
