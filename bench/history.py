"""6. History bytes per handoff: what one handoff leaves in Temporal's history.

The demo SD (examples/sd-leo-infra-hardening-001.yaml, LEAD-TO-PLAN with all of the demo's
command agents registered as `leo demo` does, and run on this one handoff) and the benchmark's handoff (5 no-op agents plus the
built-in ones). The size is the server's own `history_size_bytes` (what `temporal workflow
describe` shows). Target (issue 13): under 32 KB for the demo SD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.fixtures import make_agents, make_lead_sds, run_handoff
from bench.output import table
from bench.plots import new_figure, save_figure
from bench.stats import verdict
from leo.cli.demo import ensure_demo_sd, load_demo_spec, register_demo_agents
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType

NAME = "history"
TITLE = "6. History bytes per handoff"
TARGET_BYTES = 32 * 1024
SIZES: dict[str, dict[str, Any]] = {"quick": {"noop_agents": 5}, "full": {"noop_agents": 5}}


async def history_size(env: BenchEnv, workflow_id: str, run_id: str) -> tuple[int, int]:
    desc = await env.client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    info = desc.raw_description.workflow_execution_info
    return int(info.history_size_bytes), int(info.history_length)


async def measure(env: BenchEnv, *, noop_agents: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    demo_agents = await register_demo_agents(env.pool, 0.0)
    sd_id, _ = await ensure_demo_sd(env.pool, load_demo_spec())
    # With every demo command agent on this one handoff: the worst case of the demo's five.
    demo = await env.leo().run_handoff(
        HandoffType.LEAD_TO_PLAN, sd_id, options=HandoffOptions(extra_sub_agents=demo_agents)
    )
    size, events = await history_size(env, demo.workflow_id, demo.run_id)
    rows.append(
        {
            "handoff": "demo SD, LEAD-TO-PLAN + the demo's command agents",
            "agents": len(demo.sub_agents),
            "accepted": demo.accepted,
            "bytes": size,
            "events": events,
        }
    )
    agents = await make_agents(env.pool, noop_agents, 0.0)
    (bench_sd,) = await make_lead_sds(env.pool, 1)
    _, result = await run_handoff(env, bench_sd, agents)
    size, events = await history_size(env, result.workflow_id, result.run_id)
    rows.append(
        {
            "handoff": f"benchmark SD, LEAD-TO-PLAN, {noop_agents} no-op agents",
            "agents": len(result.sub_agents),
            "accepted": result.accepted,
            "bytes": size,
            "events": events,
        }
    )
    demo_bytes = rows[0]["bytes"]
    return {
        "config": {"noop_agents": noop_agents},
        "rows": rows,
        "headline": [
            {
                "metric": "history bytes per handoff, demo SD",
                "value": demo_bytes,
                "target": f"< {TARGET_BYTES}",
                "verdict": verdict(demo_bytes, TARGET_BYTES, at_most=True),
            }
        ],
    }


def report(data: dict[str, Any]) -> list[Any]:
    return [
        table(
            f"{TITLE}; target < {TARGET_BYTES:,} bytes for the demo SD",
            ["handoff", "agents", "accepted", "history bytes", "events"],
            [
                [r["handoff"], r["agents"], r["accepted"], f"{r['bytes']:,}", r["events"]]
                for r in data["rows"]
            ],
        )
    ]


def chart(data: dict[str, Any], results_dir: Path | None = None) -> Path:
    fig, (ax,) = new_figure(1)
    ax.bar([r["handoff"] for r in data["rows"]], [r["bytes"] for r in data["rows"]])
    ax.axhline(TARGET_BYTES, color="g", linestyle=":", label="target (demo SD)")
    ax.set_ylabel("history bytes")
    ax.legend(fontsize=8)
    return save_figure(fig, NAME, results_dir)
