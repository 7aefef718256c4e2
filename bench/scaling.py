"""5. Scaling: handoff latency and throughput against the number of sub-agents and against
the number of SDs in the database.

Sub-agents: 1, 5, 10 and 14 no-op extra agents (plus the 2 built-in ones: 16, the payload budget's
limit per handoff) per LEAD-TO-PLAN.
Database: 1k, 10k and 100k SDs, filled up between the steps with one INSERT ... SELECT
generate_series each and ANALYZEd, with 5 agents per handoff. At each point: latency of
handoffs one at a time (median, p95), then one batch of N concurrent handoffs (handoffs/s,
activities/s, latency under load).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib

from bench.env import BenchEnv
from bench.fixtures import BUILTIN_AGENTS, make_agents, make_lead_sds, run_handoff
from bench.output import table
from bench.plots import save_figure
from bench.stats import summarize
from bench.throughput import run_batch

NAME = "scaling"
TITLE = "5. Scaling with sub-agents per handoff and with SDs in the database"
DB_AGENTS = 5
SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "agent_counts": [1, 5, 10, 14],
        "db_sizes": [1_000, 10_000],
        "repeats": 5,
        "n": 20,
        "batches": 1,
    },
    "full": {
        "agent_counts": [1, 5, 10, 14],
        "db_sizes": [1_000, 10_000, 100_000],
        "repeats": 15,
        "n": 50,
        "batches": 2,
    },
}


async def _point(
    env: BenchEnv, agents: list[str], repeats: int, n: int, batches: int
) -> dict[str, Any]:
    """Latency alone (median/p95 of `repeats`), then `batches` batches of `n` at once (the
    median batch's figures)."""
    sds = await make_lead_sds(env.pool, repeats + 1)
    latencies = []
    for i, sd in enumerate(sds):
        seconds, _ = await run_handoff(env, sd, agents)
        if i > 0:  # the first one warms this catalogue's agents
            latencies.append(seconds)
    runs = [await run_batch(env, "handoff", n, agents, {}) for _ in range(batches)]
    runs.sort(key=lambda b: b["workflows_per_s"])
    batch = runs[(len(runs) - 1) // 2]  # the median batch (the lower one of two)
    return {
        "latency_s": summarize(latencies),
        "handoffs_per_s": batch["workflows_per_s"],
        "activities_per_s": batch["activities_per_s"],
        "activities_per_handoff": batch["activities_per_workflow"],
        "loaded_latency_s": batch["latency_s"],
        "batch_elapsed_s": batch["elapsed_s"],
        "all_batches_handoffs_per_s": [round(b["workflows_per_s"], 2) for b in runs],
    }


async def fill_sds(env: BenchEnv, target: int) -> dict[str, Any]:
    """Top the SD table up to `target` rows with one INSERT ... SELECT generate_series."""
    current = int(await env.pool.fetchval("SELECT count(*) FROM strategic_directives_v2"))
    started = time.perf_counter()
    if target > current:
        first = int(
            await env.pool.fetchval(
                "SELECT coalesce(max(substr(id, 9)::int), 0) + 1 FROM strategic_directives_v2 "
                "WHERE id LIKE 'SD-FILL-%'"
            )
        )
        await env.pool.execute(
            "INSERT INTO strategic_directives_v2 (id, sd_key, title, sd_type, status, current_phase) "
            "SELECT 'SD-FILL-' || g, 'SD-FILL-' || g, 'Filler directive ' || g, 'feature', "
            "'completed', 'COMPLETED' FROM generate_series($1::int, $2::int) g",
            first,
            first + target - current - 1,
        )
    insert_s = time.perf_counter() - started
    await env.pool.execute("ANALYZE")
    rows = int(await env.pool.fetchval("SELECT count(*) FROM strategic_directives_v2"))
    return {"rows": rows, "inserted": max(0, target - current), "insert_s": round(insert_s, 2)}


async def measure(
    env: BenchEnv,
    *,
    agent_counts: list[int],
    db_sizes: list[int],
    repeats: int,
    n: int,
    batches: int = 1,
) -> dict[str, Any]:
    by_agents = []
    for count in agent_counts:
        agents = await make_agents(env.pool, count, 0.0)
        by_agents.append({"agents": count, **await _point(env, agents, repeats, n, batches)})
    db_agents = await make_agents(env.pool, DB_AGENTS, 0.0)
    by_db = []
    for size in db_sizes:
        fill = await fill_sds(env, size)
        by_db.append(
            {"sds": size, "fill": fill, **await _point(env, db_agents, repeats, n, batches)}
        )

    def slope(rows: list[dict[str, Any]], key: str) -> float | None:
        if len(rows) < 2:
            return None
        first, last = rows[0], rows[-1]
        rise = last["latency_s"]["median"] - first["latency_s"]["median"]
        return float(rise / (last[key] - first[key]))

    per_agent = slope(by_agents, "agents")
    headline = []
    if per_agent is not None:
        headline.append(
            {
                "metric": "added latency per extra sub-agent (median, ms)",
                "value": round(per_agent * 1000, 1),
                "target": "report",
                "verdict": "INFO",
            }
        )
    if len(by_db) >= 2:
        ratio = by_db[-1]["latency_s"]["median"] / by_db[0]["latency_s"]["median"]
        headline.append(
            {
                "metric": f"latency at {by_db[-1]['sds']:,} SDs / at {by_db[0]['sds']:,} SDs",
                "value": round(ratio, 2),
                "target": "report",
                "verdict": "INFO",
            }
        )
    return {
        "config": {
            "agent_counts": agent_counts,
            "builtin_agents": BUILTIN_AGENTS,
            "db_sizes": db_sizes,
            "db_agents": DB_AGENTS,
            "repeats": repeats,
            "n": n,
            "batches": batches,
        },
        "by_agents": by_agents,
        "by_db": by_db,
        "headline": headline,
    }


def _row(label: str, r: dict[str, Any]) -> list[str]:
    return [
        label,
        f"{r['activities_per_handoff']:g}",
        f"{r['latency_s']['median'] * 1000:.0f} / {r['latency_s']['p95'] * 1000:.0f}",
        f"{r['handoffs_per_s']:.1f}",
        f"{r['activities_per_s']:.0f}",
        f"{r['loaded_latency_s']['median']:.2f} / {r['loaded_latency_s']['p95']:.2f}",
    ]


def report(data: dict[str, Any]) -> list[Any]:
    cfg = data["config"]
    columns = [
        "",
        "activities each",
        "latency alone median / p95 (ms)",
        f"handoffs/s (N={cfg['n']})",
        "activities/s",
        "latency under load median / p95 (s)",
    ]
    return [
        table(
            f"{TITLE}: extra no-op agents per handoff (+{cfg['builtin_agents']} built-in); "
            f"{cfg['repeats']} handoffs alone, then {cfg['n']} at once "
            f"(median of {cfg.get('batches', 1)} batches)",
            ["extra agents", *columns[1:]],
            [_row(str(r["agents"]), r) for r in data["by_agents"]],
        ),
        table(
            f"SDs in the database ({cfg['db_agents']} extra agents per handoff; "
            "filler rows inserted with one INSERT ... SELECT generate_series)",
            ["SDs", *columns[1:], "fill (s)"],
            [
                [*_row(f"{r['fill']['rows']:,}", r), f"{r['fill']['insert_s']:.1f}"]
                for r in data["by_db"]
            ],
        ),
    ]


def chart(data: dict[str, Any], results_dir: Path | None = None) -> Path:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row, (rows, key, xlabel, log) in enumerate(
        (
            (data["by_agents"], "agents", "extra sub-agents per handoff", False),
            (data["by_db"], "sds", "SDs in the database", True),
        )
    ):
        xs = [r[key] for r in rows]
        ax = axes[row][0]
        ax.plot(xs, [r["latency_s"]["median"] * 1000 for r in rows], "o-", label="median")
        ax.plot(xs, [r["latency_s"]["p95"] * 1000 for r in rows], "s--", label="p95")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("handoff latency alone (ms)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax = axes[row][1]
        ax.plot(xs, [r["handoffs_per_s"] for r in rows], "o-", color="tab:blue", label="handoffs/s")
        ax.set_ylabel("handoffs / s", color="tab:blue")
        twin = ax.twinx()
        twin.plot(
            xs,
            [r["activities_per_s"] for r in rows],
            "s--",
            color="tab:orange",
            label="activities/s",
        )
        twin.set_ylabel("activities / s", color="tab:orange")
        ax.set_ylim(bottom=0)
        twin.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_title(f"{data['config']['n']} concurrent handoffs")
        if log:
            axes[row][0].set_xscale("log")
            ax.set_xscale("log")
    return save_figure(fig, NAME, results_dir)
