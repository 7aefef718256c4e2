"""1. Parallel sub-agents: 5 independent agents of D seconds in one handoff.

Against the ideal (D: every agent at once, nothing else) and the old sequential behaviour
(5 x D), and against a bare workflow with 5 parallel activities sleeping D on the same server
in the same run. Target: handoff wall / D <= 1.05 at D = 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.fixtures import make_agents, make_lead_sds, run_handoff
from bench.floor import FloorInput, run_floor
from bench.output import table
from bench.plots import new_figure, save_figure
from bench.stats import summarize, timed, verdict

NAME = "parallel"
TITLE = "1. Parallel sub-agents (5 agents x D s)"
AGENTS = 5
TARGET_D = 2.0
TARGET_RATIO = 1.05
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"durations": [1.0, 2.0], "repeats": 3},
    "full": {"durations": [1.0, 2.0, 5.0], "repeats": 5},
}


async def measure(
    env: BenchEnv, *, durations: list[float], repeats: int, warmup: int = 1
) -> dict[str, Any]:
    noop = await make_agents(env.pool, AGENTS, 0.0)
    warm_sds = await make_lead_sds(env.pool, warmup)
    for sd in warm_sds:  # first handoff pays for imports and caches
        await run_handoff(env, sd, noop)
        await run_floor(env.client, env.floor_task_queue)

    rows: list[dict[str, Any]] = []
    for d in durations:
        agents = await make_agents(env.pool, AGENTS, d)
        sds = await make_lead_sds(env.pool, repeats)
        handoff: list[float] = []
        floor: list[float] = []
        for i, sd in enumerate(sds):
            # Alternate which goes first, so drift hits both the same way.
            if i % 2 == 0:
                handoff.append((await run_handoff(env, sd, agents))[0])
                floor.append(
                    await timed(run_floor(env.client, env.floor_task_queue, FloorInput(AGENTS, d)))
                )
            else:
                floor.append(
                    await timed(run_floor(env.client, env.floor_task_queue, FloorInput(AGENTS, d)))
                )
                handoff.append((await run_handoff(env, sd, agents))[0])
        h, f = summarize(handoff), summarize(floor)
        rows.append(
            {
                "seconds": d,
                "ideal_s": d,
                "sequential_s": AGENTS * d,
                "handoff_s": h,
                "floor_s": f,
                "handoff_wall_over_d": {"median": h["median"] / d, "p95": h["p95"] / d},
                "floor_wall_over_d": {"median": f["median"] / d, "p95": f["p95"] / d},
                "handoff_over_floor": h["median"] / f["median"],
                "speedup_vs_sequential": AGENTS * d / h["median"],
                "samples": {"handoff": handoff, "floor": floor},
            }
        )
    target_row = next((r for r in rows if r["seconds"] == TARGET_D), None)
    headline = []
    if target_row is not None:
        value = target_row["handoff_wall_over_d"]["median"]
        headline.append(
            {
                "metric": f"handoff wall / D at D = {TARGET_D:g} (median)",
                "value": round(value, 3),
                "target": f"<= {TARGET_RATIO}",
                "verdict": verdict(value, TARGET_RATIO, at_most=True),
            }
        )
    return {
        "config": {"agents": AGENTS, "durations": durations, "repeats": repeats},
        "rows": rows,
        "headline": headline,
    }


def report(data: dict[str, Any]) -> list[Any]:
    rows = []
    for r in data["rows"]:
        h, f = r["handoff_s"], r["floor_s"]
        target = ""
        if r["seconds"] == TARGET_D:
            target = verdict(r["handoff_wall_over_d"]["median"], TARGET_RATIO, at_most=True)
        rows.append(
            [
                f"{r['seconds']:g}",
                f"{r['sequential_s']:g}",
                f"{h['median']:.3f} / {h['p95']:.3f}",
                f"{r['handoff_wall_over_d']['median']:.3f} / {r['handoff_wall_over_d']['p95']:.3f}",
                f"{f['median']:.3f} / {f['p95']:.3f}",
                f"{r['floor_wall_over_d']['median']:.3f}",
                f"{r['speedup_vs_sequential']:.2f}x",
                target,
            ]
        )
    return [
        table(
            f"{TITLE}; median / p95 over {data['config']['repeats']} runs; target wall/D <= {TARGET_RATIO} at D = {TARGET_D:g}",
            [
                "D (s)",
                "sequential 5xD (s)",
                "handoff wall (s)",
                "handoff wall/D",
                "floor wall (s)",
                "floor wall/D",
                "speedup vs sequential",
                "target",
            ],
            rows,
        )
    ]


def chart(data: dict[str, Any], results_dir: Path | None = None) -> Path:
    fig, (ax1, ax2) = new_figure(2)
    ds = [r["seconds"] for r in data["rows"]]
    ax1.plot(ds, ds, "k--", label="ideal (D)")
    ax1.plot(ds, [r["sequential_s"] for r in data["rows"]], "r:", label="old sequential (5 x D)")
    for key, label, fmt in (("handoff_s", "handoff", "o-"), ("floor_s", "bare workflow", "s-")):
        med = [r[key]["median"] for r in data["rows"]]
        p95 = [r[key]["p95"] for r in data["rows"]]
        ax1.errorbar(
            ds,
            med,
            yerr=[[0] * len(med), [p - m for p, m in zip(p95, med, strict=True)]],
            fmt=fmt,
            capsize=3,
            label=f"{label} (median, bar to p95)",
        )
    ax1.set_xlabel("D: each agent's duration (s)")
    ax1.set_ylabel("wall time (s)")
    ax1.set_title("5 agents of D seconds")
    ax1.legend(fontsize=8)
    width = 0.35
    xs = range(len(ds))
    ax2.bar(
        [x - width / 2 for x in xs],
        [r["handoff_wall_over_d"]["median"] for r in data["rows"]],
        width,
        label="handoff",
    )
    ax2.bar(
        [x + width / 2 for x in xs],
        [r["floor_wall_over_d"]["median"] for r in data["rows"]],
        width,
        label="bare workflow",
    )
    ax2.axhline(1.0, color="k", linestyle="--", linewidth=1, label="ideal")
    ax2.axhline(TARGET_RATIO, color="g", linestyle=":", label=f"target {TARGET_RATIO}")
    ax2.set_xticks(list(xs), [f"D={d:g}" for d in ds])
    ax2.set_ylim(0.9, max(1.3, *[r["handoff_wall_over_d"]["median"] for r in data["rows"]]) + 0.05)
    ax2.set_ylabel("wall / D (median)")
    ax2.set_title("overhead over the ideal")
    ax2.legend(fontsize=8)
    return save_figure(fig, NAME, results_dir)
