"""The rows a benchmark needs (catalogue agents, SDs ready for LEAD-TO-PLAN) and one handoff
through the production API, timed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import asyncpg

from bench.env import BenchEnv
from leo.domain.handoff_messages import HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType

# The no-op / sleeping sub-agent the benchmarks put in the catalogue (python executor).
SLEEP_AGENT_REF = "bench.agents:sleep"
# LEAD-TO-PLAN on an infrastructure SD: the built-in VALIDATION and RISK agents plus extras.
BENCH_HANDOFF = HandoffType.LEAD_TO_PLAN
BUILTIN_AGENTS = 2


async def make_agents(pool: asyncpg.Pool, count: int, seconds: float = 0.0) -> list[str]:
    """`count` catalogue rows whose python executor sleeps `seconds` and passes."""
    prefix = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    codes = [f"{prefix}_{n}" for n in range(1, count + 1)]
    await pool.execute(
        "INSERT INTO leo_sub_agents (code, name, priority, executor_kind, executor_ref, metadata) "
        "SELECT code, 'Benchmark agent ' || code, 50, 'python', to_jsonb($2::text), "
        "jsonb_build_object('seconds', $3::float8) FROM unnest($1::text[]) AS code",
        codes,
        SLEEP_AGENT_REF,
        seconds,
    )
    return codes


async def make_lead_sds(pool: asyncpg.Pool, count: int) -> list[str]:
    """`count` infrastructure SDs ready for LEAD-TO-PLAN, in one statement."""
    prefix = f"SD-BENCH-{uuid.uuid4().hex[:8].upper()}"
    rows = await pool.fetch(
        "INSERT INTO strategic_directives_v2 (id, sd_key, title, description, scope, "
        "success_criteria, sd_type, status, current_phase) "
        "SELECT $1 || '-' || g, $1 || '-' || g, 'Benchmark directive ' || g, "
        "'A directive created by the benchmarks.', 'Benchmark scope', '[\"it works\"]'::jsonb, "
        "'infrastructure', 'draft', 'LEAD_APPROVAL' FROM generate_series(1, $2::int) g "
        "RETURNING id",
        prefix,
        count,
    )
    return [r["id"] for r in rows]


async def run_handoff(
    env: BenchEnv,
    sd_id: str,
    agents: Sequence[str],
    *,
    task_queue: str | None = None,
    eager_start: bool = True,
) -> tuple[float, HandoffResult]:
    """One LEAD-TO-PLAN through the production API, start to result, in seconds."""
    leo = env.leo(task_queue, eager_start=eager_start)
    started = time.perf_counter()
    result = await leo.run_handoff(
        BENCH_HANDOFF, sd_id, options=HandoffOptions(extra_sub_agents=list(agents))
    )
    elapsed = time.perf_counter() - started
    if not result.accepted:
        raise RuntimeError(f"benchmark handoff on {sd_id} was rejected: {result.issues}")
    return elapsed, result
