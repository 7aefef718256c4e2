"""3. Throughput: N concurrent handoffs on distinct SDs, with one worker and then two.

Each handoff is LEAD-TO-PLAN with 5 no-op agents (plus the 2 built-in ones): 9 activities
over 3 sequential stages. The floor is N concurrent bare workflows of 5 parallel no-op
activities, measured in the same phase (so with the same server state and the same load on
the machine). The second worker is a separate process (`python worker.py`) on the same task
queue. Target: handoffs/s >= 0.7 x the floor's workflows/s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

from bench.env import BenchEnv, WorkerProcess
from bench.fixtures import BUILTIN_AGENTS, make_agents, make_lead_sds, run_handoff
from bench.floor import FloorInput, run_floor
from bench.monitor import ActivityFailures, ProcessMonitor
from bench.output import table
from bench.plots import new_figure, save_figure
from bench.stats import concurrent_batch, summarize, verdict

NAME = "throughput"
TITLE = "3. Throughput: N concurrent handoffs, 1 and 2 workers, vs the bare-workflow floor"
AGENTS = 5
FLOOR_ACTIVITIES = 5
TARGET_RATIO = 0.7  # issue 13 (was 0.6)
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"n": 50, "repeats": 2},
    "full": {"n": 200, "repeats": 3},
}
BENCH_PROCESS = "bench process (client + worker 1 + floor worker)"
WORKER_2 = "worker 2 (python worker.py)"


async def run_batch(
    env: BenchEnv, kind: str, n: int, agents: list[str], groups: dict[str, int]
) -> dict[str, Any]:
    rss_of = [g for g in (BENCH_PROCESS, WORKER_2) if g in groups]
    activities_per_workflow: float = FLOOR_ACTIVITIES
    if kind == "floor":
        jobs = [
            lambda: run_floor(env.client, env.floor_task_queue, FloorInput(FLOOR_ACTIVITIES))
        ] * n
    else:
        sds = await make_lead_sds(env.pool, n)
        counts: list[int] = []

        def job(sd: str) -> Any:
            async def run() -> None:
                _, result = await run_handoff(env, sd, agents)
                counts.append(2 + sum(1 for r in result.sub_agents if r.ran))

            return run

        jobs = [job(sd) for sd in sds]
    psutil.cpu_percent(interval=None)  # start the machine-wide CPU window
    threads_of = [BENCH_PROCESS] if BENCH_PROCESS in groups else []
    with ActivityFailures() as failures:
        async with ProcessMonitor(groups, rss_of=rss_of, threads_of=threads_of) as monitor:
            elapsed, done = await concurrent_batch(jobs)
    machine_cpu = psutil.cpu_percent(interval=None)
    if kind != "floor":
        activities_per_workflow = round(sum(counts) / len(counts), 2)
    return {
        "kind": kind,
        "n": n,
        "elapsed_s": elapsed,
        "workflows_per_s": n / elapsed,
        "activities_per_workflow": activities_per_workflow,
        "activities_per_s": n * activities_per_workflow / elapsed,
        "latency_s": summarize(done),
        "machine_cpu_busy_pct": machine_cpu,
        "cpu_pct_of_one_core": {
            k: round(v, 1) for k, v in monitor.result["cpu_pct_of_one_core"].items()
        },
        "bench_threads_cpu_s": monitor.result["thread_cpu_s"].get(BENCH_PROCESS, {}),
        "peak_rss_mib": monitor.result["peak_rss_mib"],
        # Failed activity attempts in this process's worker (retried by Temporal).
        "activity_failures": dict(failures.counts),
    }


def _config(label: str, batches: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [b["workflows_per_s"] for b in batches]
    return {
        "label": label,
        "workflows_per_s": summarize(rates),
        "activities_per_s": summarize(b["activities_per_s"] for b in batches),
        "activities_per_workflow": batches[0]["activities_per_workflow"],
        "latency_median_s": summarize(b["latency_s"]["median"] for b in batches)["median"],
        "latency_p95_s": summarize(b["latency_s"]["p95"] for b in batches)["median"],
        "machine_cpu_busy_pct": summarize(b["machine_cpu_busy_pct"] for b in batches)["median"],
        "cpu_pct_of_one_core": {
            k: round(summarize(b["cpu_pct_of_one_core"].get(k, 0) for b in batches)["median"], 1)
            for k in batches[0]["cpu_pct_of_one_core"]
        },
        "peak_rss_mib": {
            k: max(b["peak_rss_mib"].get(k, 0) for b in batches) for k in batches[0]["peak_rss_mib"]
        },
        "activity_failures": sum(sum(b["activity_failures"].values()) for b in batches),
        "activity_failure_kinds": sorted({k for b in batches for k in b["activity_failures"]}),
        "batches": batches,
    }


async def measure(env: BenchEnv, *, n: int, repeats: int, warmup: int = 10) -> dict[str, Any]:
    agents = await make_agents(env.pool, AGENTS, 0.0)
    await run_batch(env, "handoff", warmup, agents, {})  # imports, caches, pool connections
    await run_batch(env, "floor", warmup, agents, {})
    groups = {BENCH_PROCESS: os.getpid(), **env.pids()}

    phase_a: dict[str, list[dict[str, Any]]] = {"floor": [], "handoff": []}
    for i in range(repeats):
        for kind in ("floor", "handoff") if i % 2 == 0 else ("handoff", "floor"):
            phase_a[kind].append(await run_batch(env, kind, n, agents, groups))

    phase_b: dict[str, list[dict[str, Any]]] = {"floor": [], "handoff": []}
    started = time.perf_counter()
    async with WorkerProcess(env) as second:
        worker_2_start_s = time.perf_counter() - started
        groups_b = {**groups, WORKER_2: second.pid}
        await run_batch(env, "handoff", warmup, agents, groups_b)  # warm the second worker
        for i in range(repeats):
            for kind in ("floor", "handoff") if i % 2 == 0 else ("handoff", "floor"):
                phase_b[kind].append(await run_batch(env, kind, n, agents, groups_b))

    configs = {
        "floor_1": _config(
            f"floor: {n} bare workflows x {FLOOR_ACTIVITIES} activities (phase 1)", phase_a["floor"]
        ),
        "handoff_1": _config(f"{n} handoffs, 1 worker", phase_a["handoff"]),
        "floor_2": _config(
            f"floor: {n} bare workflows (phase 2, worker 2 idle on its queue)", phase_b["floor"]
        ),
        "handoff_2": _config(
            f"{n} handoffs, 2 workers (2nd: python worker.py)", phase_b["handoff"]
        ),
    }
    ratio_1 = (
        configs["handoff_1"]["workflows_per_s"]["median"]
        / configs["floor_1"]["workflows_per_s"]["median"]
    )
    ratio_2 = (
        configs["handoff_2"]["workflows_per_s"]["median"]
        / configs["floor_2"]["workflows_per_s"]["median"]
    )
    return {
        "config": {
            "n": n,
            "repeats": repeats,
            "agents": AGENTS,
            "builtin_agents": BUILTIN_AGENTS,
            "nproc": os.cpu_count(),
        },
        "configs": configs,
        "ratio_1_worker": ratio_1,
        "ratio_2_workers": ratio_2,
        "worker_2_start_s": worker_2_start_s,
        "headline": [
            {
                "metric": f"handoffs/s / floor workflows/s, 1 worker (N={n})",
                "value": round(ratio_1, 2),
                "target": f">= {TARGET_RATIO}",
                "verdict": verdict(ratio_1, TARGET_RATIO, at_most=False),
            },
            {
                "metric": f"handoffs/s / floor workflows/s, 2 workers (N={n})",
                "value": round(ratio_2, 2),
                "target": f">= {TARGET_RATIO}",
                "verdict": verdict(ratio_2, TARGET_RATIO, at_most=False),
            },
        ],
    }


def report(data: dict[str, Any]) -> list[Any]:
    configs = data["configs"]
    rows = []
    for key, c in configs.items():
        ratio = ""
        target = ""
        if key.startswith("handoff"):
            r = data["ratio_1_worker"] if key == "handoff_1" else data["ratio_2_workers"]
            ratio = f"{r:.2f}x"
            target = verdict(r, TARGET_RATIO, at_most=False)
        rss = ", ".join(f"{v:.0f}" for v in c["peak_rss_mib"].values())
        rows.append(
            [
                c["label"],
                f"{c['workflows_per_s']['median']:.1f} ({c['workflows_per_s']['min']:.1f}-{c['workflows_per_s']['max']:.1f})",
                f"{c['activities_per_s']['median']:.0f}",
                f"{c['activities_per_workflow']:g}",
                f"{c['latency_median_s']:.2f} / {c['latency_p95_s']:.2f}",
                f"{c['machine_cpu_busy_pct']:.0f}%",
                rss,
                str(c["activity_failures"]),
                ratio,
                target,
            ]
        )
    cpu_rows = []
    for c in configs.values():
        cpu_rows.append([c["label"], *[f"{v:.0f}%" for v in c["cpu_pct_of_one_core"].values()]])
    cpu_cols = ["batch", *configs["handoff_2"]["cpu_pct_of_one_core"].keys()]
    cpu_rows = [r + [""] * (len(cpu_cols) - len(r)) for r in cpu_rows]
    kinds = sorted({k for c in configs.values() for k in c["activity_failure_kinds"]})
    extra = (
        [
            table(
                "Failed activity attempts seen (retried by Temporal)",
                ["error"],
                [[k] for k in kinds],
            )
        ]
        if kinds
        else []
    )
    return [
        table(
            f"{TITLE}; median (min-max) of {data['config']['repeats']} batches; target >= {TARGET_RATIO}x floor",
            [
                "batch",
                "workflows/s",
                "activities/s",
                "activities each",
                "latency median / p95 (s)",
                "machine CPU busy",
                "peak RSS MiB (bench, worker 2)",
                "failed attempts (worker 1)",
                "/ floor",
                "target",
            ],
            rows,
        ),
        table(
            f"CPU by process during the batches (% of one core; the machine has {data['config']['nproc']} cores)",
            cpu_cols,
            cpu_rows,
        ),
        *extra,
    ]


def chart(data: dict[str, Any], results_dir: Path | None = None) -> Path:
    fig, (ax1, ax2) = new_figure(2, width=6.5)
    configs = data["configs"]
    keys = list(configs)
    labels = ["floor\n(phase 1)", "handoffs\n1 worker", "floor\n(phase 2)", "handoffs\n2 workers"]
    med = [configs[k]["workflows_per_s"]["median"] for k in keys]
    low = [m - configs[k]["workflows_per_s"]["min"] for k, m in zip(keys, med, strict=True)]
    high = [configs[k]["workflows_per_s"]["max"] - m for k, m in zip(keys, med, strict=True)]
    colors = ["tab:gray", "tab:blue", "tab:gray", "tab:blue"]
    ax1.bar(labels, med, yerr=[low, high], capsize=4, color=colors)
    for i, floor_key in ((1, "floor_1"), (3, "floor_2")):
        target = TARGET_RATIO * configs[floor_key]["workflows_per_s"]["median"]
        ax1.hlines(
            target,
            i - 0.4,
            i + 0.4,
            colors="g",
            linestyles=":",
            label=f"target {TARGET_RATIO} x floor" if i == 1 else None,
        )
    ax1.set_ylabel("workflows / s (median, bar = min..max)")
    ax1.set_title(f"N = {data['config']['n']} concurrent")
    ax1.legend(fontsize=8)
    groups = list(configs["handoff_2"]["cpu_pct_of_one_core"])
    bottom = [0.0] * len(keys)
    for g in groups:
        values = [configs[k]["cpu_pct_of_one_core"].get(g, 0) for k in keys]
        ax2.bar(labels, values, bottom=bottom, label=g)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax2.axhline(
        100 * data["config"]["nproc"], color="k", linestyle="--", linewidth=1, label="all cores"
    )
    ax2.set_ylabel("CPU, % of one core")
    ax2.set_title("who uses the CPU")
    ax2.legend(fontsize=7)
    return save_figure(fig, NAME, results_dir)
