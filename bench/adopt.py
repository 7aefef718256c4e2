"""7. A mixed deployment: handoff latency in adopt mode beside native mode (issue 18).

On one server: the benchmark's native LEO database, and an EHG_Engineer-shaped database
(examples/ehg_engineer/) adopted by `leo db adopt` with a second production worker whose pool
connects as adopt mode does (schema leo first on the search_path). The same handoff
(LEAD-TO-PLAN on an infrastructure SD, the built-in agents) runs on fresh SDs of each,
interleaved, one at a time, start to result through the production API. Adopt mode writes their
rows through their triggers (actor allow-list, claim, narrative validation, progress, ...) and
its side tables, so it is expected to cost somewhat more; the target is at most 1.5 x native.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.env import BenchEnv
from bench.fixtures import BENCH_HANDOFF, make_lead_sds
from bench.machine import PROJECT_ROOT
from bench.output import table
from bench.plots import new_figure, save_figure
from bench.stats import ms, summarize, verdict
from db.adopt.runner import adopt
from db.pool import connect, create_pool
from leo.api import LeoClient
from leo.infra.settings import Settings
from leo.runtime import Runtime, load_gate_registry

NAME = "adopt"
TITLE = "7. Handoff latency: adopt mode beside native mode"
TARGET_RATIO = 1.5
SIZES: dict[str, dict[str, Any]] = {"quick": {"handoffs": 10}, "full": {"handoffs": 40}}
EHG_DIR = PROJECT_ROOT / "examples" / "ehg_engineer"
OWNER = "ehg_owner"
ACTOR = "LEO-ORCHESTRATOR"
# What the owner does before adopting (docs/adoption.md, step 2): the actor in their allow-list.
REGISTER_ACTOR = f"""
CREATE OR REPLACE FUNCTION handoff_actor_policy(p_created_by text)
RETURNS TABLE (may_create boolean, skips_claim_check boolean) LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(bool_or(a.creates), false), coalesce(bool_or(a.skips), false)
    FROM (VALUES ('UNIFIED-HANDOFF-SYSTEM', true, false), ('SYSTEM_MIGRATION', true, true),
                 ('ADMIN_OVERRIDE', true, true), ('ORCHESTRATOR_AUTO_COMPLETE', true, true),
                 ('{ACTOR}', true, false)) AS a(actor, creates, skips)
    WHERE a.actor = p_created_by;
$$"""


def _dsn(dsn: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = f"{user}@{parts.netloc.rpartition('@')[2]}" if user else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@asynccontextmanager
async def adopted_database(env: BenchEnv) -> AsyncIterator[tuple[str, asyncpg.Pool, LeoClient]]:
    """An adopted EHG_Engineer-shaped database, a pool and a production worker on it."""
    name = f"ehg_bench_{uuid.uuid4().hex[:8]}"
    admin = await connect(env.database_url)
    try:
        await admin.execute((EHG_DIR / "01_roles.sql").read_text())
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER}')
    finally:
        await admin.close()
    owner_dsn = _dsn(env.database_url, name, OWNER)
    try:
        conn = await connect(owner_dsn)
        try:
            for path in sorted(EHG_DIR.glob("0[2-5]_*.sql")):
                await conn.execute(path.read_text())
            await conn.execute(REGISTER_ACTOR)
            await adopt(conn, actor=ACTOR)
        finally:
            await conn.close()
        settings = Settings(
            database_url=owner_dsn,
            temporal_address=env.temporal_address,
            schema_mode="adopt",
            adopt_actor=ACTOR,
        )
        pool = await create_pool(
            owner_dsn, min_size=2, max_size=20, search_path=settings.search_path
        )
        queue = f"bench-adopt-{uuid.uuid4().hex[:8]}"
        runtime = Runtime(
            settings=settings, client=env.client, pool=pool, gates=load_gate_registry()
        )
        try:
            async with runtime.worker(queue):
                yield owner_dsn, pool, LeoClient(env.client, pool, queue)
        finally:
            await pool.close()
    finally:
        admin = await connect(env.database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def make_adopted_sds(pool: asyncpg.Pool, count: int) -> list[tuple[str, str]]:
    """`count` SDs in their tables ready for LEAD-TO-PLAN, each claimed by its own LEO session
    through their claim function: [(sd_key, session_id)]."""
    prefix = f"SD-BENCH-{uuid.uuid4().hex[:8].upper()}"
    keys = await pool.fetch(
        "INSERT INTO public.strategic_directives_v2 (id, sd_key, title, status, category, "
        "priority, description, rationale, scope, current_phase, sd_type, quality_checked, "
        "success_criteria) SELECT gen_random_uuid()::text, $1 || '-' || g, "
        "'Benchmark directive ' || g, 'draft', 'infrastructure', 'medium', "
        "'A directive created by the benchmarks.', 'Benchmark.', 'Benchmark scope', "
        "'LEAD_APPROVAL', 'infrastructure', true, '[\"it works\"]'::jsonb "
        "FROM generate_series(1, $2::int) g RETURNING sd_key",
        prefix,
        count,
    )
    sds = []
    for row in keys:
        session = f"session_bench_{uuid.uuid4().hex[:8]}"
        claimed = await pool.fetchval(
            "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", row["sd_key"], session
        )
        if not claimed["success"]:
            raise RuntimeError(f"could not claim {row['sd_key']}: {claimed}")
        sds.append((row["sd_key"], session))
    return sds


async def timed_handoff(leo: LeoClient, sd: str, session: str | None) -> float:
    started = time.perf_counter()
    result = await leo.run_handoff(BENCH_HANDOFF, sd, session_id=session)
    elapsed = time.perf_counter() - started
    if not result.accepted:
        raise RuntimeError(f"benchmark handoff on {sd} was rejected: {result.issues}")
    return elapsed


async def measure(env: BenchEnv, *, handoffs: int) -> dict[str, Any]:
    native_sds = await make_lead_sds(env.pool, handoffs + 1)
    native_leo = env.leo()
    samples: dict[str, list[float]] = {"native": [], "adopt": []}
    async with adopted_database(env) as (_, pool, adopt_leo):
        adopt_sds = await make_adopted_sds(pool, handoffs + 1)
        # One warm-up each (connections, prepared statements, the worker's first tasks).
        await timed_handoff(native_leo, native_sds[0], None)
        await timed_handoff(adopt_leo, *adopt_sds[0])
        for native_sd, (adopt_sd, session) in zip(native_sds[1:], adopt_sds[1:], strict=True):
            samples["native"].append(await timed_handoff(native_leo, native_sd, None))
            samples["adopt"].append(await timed_handoff(adopt_leo, adopt_sd, session))
    native, adopted = summarize(samples["native"]), summarize(samples["adopt"])
    ratio = adopted["median"] / native["median"]
    return {
        "handoff": BENCH_HANDOFF.value,
        "native": native,
        "adopt": adopted,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "samples": samples,
        "headline": [
            {
                "metric": f"{BENCH_HANDOFF.value} latency, adopt / native (median)",
                "value": round(ratio, 2),
                "target": f"<= {TARGET_RATIO}",
                "verdict": verdict(ratio, TARGET_RATIO, at_most=True),
            }
        ],
    }


def report(data: dict[str, Any]) -> list[Any]:
    rows = [
        [mode, data[mode]["n"], ms(data[mode]["median"]), ms(data[mode]["p95"])]
        for mode in ("native", "adopt")
    ]
    ratio = data["ratio"]
    rows.append(
        [
            f"adopt / native (median), target <= {data['target_ratio']}",
            "",
            f"{ratio:.2f}",
            verdict(ratio, data["target_ratio"], at_most=True),
        ]
    )
    return [
        table(
            f"{TITLE}: {data['handoff']}, start to result, one at a time",
            ["mode", "handoffs", "median ms", "p95 ms"],
            rows,
        )
    ]


def chart(data: dict[str, Any], results_dir: Path | None = None) -> Path:
    fig, (ax,) = new_figure(1)
    ax.boxplot(
        [[s * 1000 for s in data["samples"][m]] for m in ("native", "adopt")],
        tick_labels=["native", "adopt"],
    )
    ax.set_ylabel(f"{data['handoff']} latency (ms)")
    return save_figure(fig, NAME, results_dir)
