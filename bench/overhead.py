"""2. Handoff overhead: one handoff with 5 no-op agents against two floors, in the same run.

- The bare floor: a workflow of 5 parallel no-op activities, nothing else.
- The target-shape floor: a local activity, the same 5 parallel no-op activities, a local
  activity (`FloorInput(before=1, after=1, local=True)`). That is the handoff's own shape (issue
  19: snapshot step, agents, gates + commit), with no code of ours inside, so the handoff against
  it is what our code costs; against the bare floor, what the shape costs too.

Both floors run on the same server, interleaved with the handoffs. A handoff on LEAD-TO-PLAN
for an infrastructure SD also evaluates the built-in VALIDATION and RISK agents, in the snapshot
step. The what-if rows run the same production worker with other `Worker` options (no
production code is changed).

Also: where the time goes inside one handoff (from its event history), CPU per handoff by
process, and (with --profile) a py-spy profile of the worker process: the CPU split.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.env import BenchEnv
from bench.fixtures import BUILTIN_AGENTS, make_agents, make_lead_sds, run_handoff
from bench.floor import FloorInput, run_floor
from bench.monitor import ProcessMonitor
from bench.output import RESULTS_DIR, table
from bench.plots import new_figure, save_figure
from bench.stats import ms, summarize, timed, verdict

NAME = "overhead"
TITLE = "2. Handoff overhead (5 no-op agents) vs the target-shape floor and the bare floor"
AGENTS = 5
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"repeats": 20, "cpu_runs": 20},
    "full": {"repeats": 60, "cpu_runs": 50},
}
BARE = FloorInput(parallel=AGENTS)
TARGET_SHAPE = FloorInput(parallel=AGENTS, before=1, after=1, local=True)
# Issue 19's targets, as ratios of medians in one run on one server.
TARGET_RATIO = 1.1  # handoff / target-shape floor (moonshot 1.05)
BARE_TARGET_RATIO = 1.3  # handoff / bare floor (moonshot 1.22)

VARIANTS: dict[str, str] = {
    "handoff": f"handoff: LEAD-TO-PLAN, {AGENTS} no-op agents (+{BUILTIN_AGENTS} built-in)",
    "floor": f"bare floor: {AGENTS} parallel no-op activities",
    "floor_target": f"target-shape floor: local, {AGENTS} parallel no-op activities, local",
    "whatif_handoff_sandboxed": "what-if handoff, in the workflow sandbox (before R5)",
    "whatif_handoff_lazy": "what-if handoff, SDK-default eager reservations (3), no eager start",
}
FLOORS = {"floor": BARE, "floor_target": TARGET_SHAPE}


def what_if_workers() -> dict[str, dict[str, Any]]:
    """Worker options of the what-if handoff variants (production code unchanged: build_worker
    forwards Worker options); the production worker's own runner is the default."""
    from leo.runtime import SHARED_MODULES_SANDBOX

    return {
        # The handoff workflows opt out of the sandbox (sandboxed=False): the worker runs them
        # with its unsandboxed runner, here the production sandbox instead.
        "whatif_handoff_sandboxed": {"unsandboxed_workflow_runner": SHARED_MODULES_SANDBOX},
        "whatif_handoff_lazy": {"max_eager_activity_reservations_per_workflow_task": 3},
    }


# --------------------------------------------------------------------------- history timeline


def _ms_between(a: Any, b: Any) -> float:
    return float((b.ToDatetime() - a.ToDatetime()).total_seconds() * 1000)


def _task_times(events: list[Any]) -> list[float]:
    """Each workflow task's time on the worker (started -> completed), in order."""
    times: list[float] = []
    started = None
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = e.event_time
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started is not None:
            times.append(_ms_between(started, e.event_time))
    return times


async def timeline(client: Client, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
    """Where one workflow's time went, from its event history: the gap before each stage of
    activities (a workflow task + dispatch), each stage's span, and the tail."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    events = list(history.events)
    start = events[0].event_time
    end = events[-1].event_time
    stages: dict[int, dict[str, Any]] = {}
    by_scheduled: dict[int, int] = {}
    scheduled_at: dict[int, Any] = {}
    started: dict[int, Any] = {}
    # Activities the worker started eagerly (returned with the workflow task's completion, no
    # matching): their started time is their scheduled time.
    eager = 0
    task_ms = _task_times(events)
    wft = 0
    local = 0
    for e in events:
        kind = e.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            wft += 1
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            local += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            group = stages.setdefault(
                attrs.workflow_task_completed_event_id,
                {"scheduled": e.event_time, "names": [], "completed": None, "longest_run_ms": 0.0},
            )
            group["names"].append(attrs.activity_type.name)
            by_scheduled[e.event_id] = attrs.workflow_task_completed_event_id
            scheduled_at[e.event_id] = e.event_time
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            started[sid] = e.event_time
            if sid in scheduled_at and _ms_between(scheduled_at[sid], e.event_time) < 1.0:
                eager += 1
        elif kind in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        ):
            finished = (
                e.activity_task_completed_event_attributes
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                else e.activity_task_failed_event_attributes
            )
            group = stages[by_scheduled[finished.scheduled_event_id]]
            if (
                group["completed"] is None
                or e.event_time.ToDatetime() > group["completed"].ToDatetime()
            ):
                group["completed"] = e.event_time
            if finished.scheduled_event_id in started:
                run = _ms_between(started[finished.scheduled_event_id], e.event_time)
                group["longest_run_ms"] = max(group["longest_run_ms"], run)
    segments: list[tuple[str, float]] = []
    previous = start
    for i, key in enumerate(sorted(stages)):
        group = stages[key]
        names = sorted(set(group["names"]))
        label = names[0] if len(names) == 1 else "+".join(names)
        label = f"{label} x{len(group['names'])}" if len(group["names"]) > 1 else label
        segments.append(
            (
                f"gap before stage {i + 1} (workflow task + dispatch)",
                _ms_between(previous, group["scheduled"]),
            )
        )
        segments.append(
            (f"stage {i + 1}: {label}", _ms_between(group["scheduled"], group["completed"]))
        )
        segments.append(("  of which the longest activity ran", group["longest_run_ms"]))
        previous = group["completed"]
    segments.append(("tail: last workflow task to completion", _ms_between(previous, end)))
    return {
        "total_ms": _ms_between(start, end),
        "workflow_tasks": wft,
        "local_activities": local,
        "eagerly_started": eager,
        "activities": len(scheduled_at),
        "first_task_ms": task_ms[0] if task_ms else 0.0,
        "last_task_ms": task_ms[-1] if task_ms else 0.0,
        "segments": segments,
    }


def median_timeline(timelines: list[dict[str, Any]]) -> dict[str, Any]:
    if not timelines:
        return {}
    labels = [label for label, _ in timelines[0]["segments"]]
    medians = []
    for i, label in enumerate(labels):
        values = [t["segments"][i][1] for t in timelines if len(t["segments"]) > i]
        medians.append([label, round(summarize(values)["median"], 1)])
    return {
        "runs": len(timelines),
        "total_ms": round(summarize(t["total_ms"] for t in timelines)["median"], 1),
        "workflow_tasks": summarize(t["workflow_tasks"] for t in timelines)["median"],
        "eagerly_started": summarize(t.get("eagerly_started", 0) for t in timelines)["median"],
        "activities": summarize(t.get("activities", 0) for t in timelines)["median"],
        "first_task_ms": round(
            summarize(t.get("first_task_ms", 0) for t in timelines)["median"], 1
        ),
        "last_task_ms": round(summarize(t.get("last_task_ms", 0) for t in timelines)["median"], 1),
        "segments_ms": medians,
    }


# --------------------------------------------------------------------------- measure


async def _interleaved(
    env: BenchEnv,
    agents: list[str],
    queues: dict[str, str],
    variants: list[str],
    *,
    repeats: int,
    warmup: int,
) -> tuple[dict[str, list[float]], dict[str, list[tuple[str, str]]]]:
    """Every variant once per round, rounds rotating who goes first, so that drift and noise
    from other work on the machine hit all variants alike."""
    sds = {v: await make_lead_sds(env.pool, warmup + repeats) for v in variants if v in queues}
    ids: dict[str, list[tuple[str, str]]] = {v: [] for v in variants}

    async def one(variant: str, i: int) -> float:
        if variant in queues:
            seconds, result = await run_handoff(
                env,
                sds[variant][i],
                agents,
                task_queue=queues[variant],
                eager_start=variant != "whatif_handoff_lazy",
            )
            ids[variant].append((result.workflow_id, result.run_id))
            return seconds
        return await timed(run_floor(env.client, env.floor_task_queue, FLOORS[variant]))

    samples: dict[str, list[float]] = {v: [] for v in variants}
    for i in range(warmup + repeats):
        order = variants[i % len(variants) :] + variants[: i % len(variants)]
        for variant in order:
            seconds = await one(variant, i)
            if i >= warmup:
                samples[variant].append(seconds)
    return samples, {v: ids[v][warmup:] for v in variants}


async def _timelines(
    env: BenchEnv, handoff_ids: list[tuple[str, str]], runs: int
) -> dict[str, Any]:
    timelines = {
        "handoff": median_timeline(
            [await timeline(env.client, w, r) for w, r in handoff_ids[:runs]]
        )
    }
    # The floor's own histories, for the same breakdown.
    for key, request in FLOORS.items():
        found = []
        for _ in range(min(runs, 10)):
            wid = f"bench-floor-tl-{uuid.uuid4().hex}"
            await env.client.execute_workflow(
                "BenchFloor", request, id=wid, task_queue=env.floor_task_queue
            )
            found.append(await timeline(env.client, wid))
        timelines[key] = median_timeline(found)
    return timelines


async def _cpu_and_profile(
    env: BenchEnv, agents: list[str], runs: int, profile_to: Path | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """CPU per workflow by process (and by thread in this one), over `runs` sequential
    handoffs and then `runs` floors; py-spy over the handoffs if `profile_to` is set."""
    bench_group = "bench process (client + worker)"
    groups = {bench_group: os.getpid(), **env.pids()}
    sds = await make_lead_sds(env.pool, runs)
    spy: contextlib.AbstractAsyncContextManager[dict[str, Any] | None]
    if profile_to is not None:
        from bench.profiling import py_spy

        spy = py_spy(profile_to)
    else:
        spy = contextlib.nullcontext(None)
    async with spy as spy_info, ProcessMonitor(groups, threads_of=[bench_group]) as handoff_mon:
        for sd in sds:
            await run_handoff(env, sd, agents)
    async with ProcessMonitor(groups, threads_of=[bench_group]) as floor_mon:
        for _ in range(runs):
            await run_floor(env.client, env.floor_task_queue)

    def per_run(values: dict[str, float]) -> dict[str, float]:
        return {k: round(1000 * v / runs, 1) for k, v in values.items()}

    cpu = {
        "runs": runs,
        "handoff_cpu_ms_per_run": per_run(handoff_mon.result["cpu_s"]),
        "floor_cpu_ms_per_run": per_run(floor_mon.result["cpu_s"]),
        "handoff_thread_cpu_ms_per_run": per_run(handoff_mon.result["thread_cpu_s"][bench_group]),
        "floor_thread_cpu_ms_per_run": per_run(floor_mon.result["thread_cpu_s"][bench_group]),
        "handoff_wall_ms_per_run": round(1000 * handoff_mon.result["elapsed_s"] / runs, 1),
        "floor_wall_ms_per_run": round(1000 * floor_mon.result["elapsed_s"] / runs, 1),
    }
    profile_info = None
    if spy_info is not None:
        profile_info = dict(spy_info)
        if spy_info.get("ok"):
            from bench.profiling import summarize_raw

            profile_info["summary"] = summarize_raw(Path(spy_info["output"]))
            profile_info["handoffs_profiled"] = runs
    return cpu, profile_info


async def measure(
    env: BenchEnv,
    *,
    repeats: int,
    warmup: int = 3,
    cpu_runs: int = 0,
    timeline_runs: int = 10,
    what_if: bool = True,
    profile: bool = False,
    results_dir: Path | None = None,
) -> dict[str, Any]:
    from leo.runtime import build_worker

    agents = await make_agents(env.pool, AGENTS, 0.0)
    queues = {"handoff": env.task_queue}
    variants = ["handoff", "floor", "floor_target"]
    async with contextlib.AsyncExitStack() as workers:
        if what_if:
            variants += list(what_if_workers())
            for key, options in what_if_workers().items():
                queues[key] = f"leo-bench-{key}-{uuid.uuid4().hex[:6]}"
                await workers.enter_async_context(
                    build_worker(env.client, env.pool, task_queue=queues[key], **options)
                )
        samples, ids = await _interleaved(
            env, agents, queues, variants, repeats=repeats, warmup=warmup
        )
    timelines = await _timelines(env, ids["handoff"], timeline_runs)
    stats = {v: summarize(samples[v]) for v in variants}
    ratios = {v: stats[v]["median"] / stats["floor"]["median"] for v in variants}

    cpu: dict[str, Any] = {}
    profile_info: dict[str, Any] | None = None
    if cpu_runs:
        profile_to = (results_dir or RESULTS_DIR) / "overhead-py-spy.raw.txt" if profile else None
        cpu, profile_info = await _cpu_and_profile(env, agents, cpu_runs, profile_to)

    # The headline: the handoff against the floor of its own shape (what our code costs).
    ratio = ratios["handoff"] / ratios["floor_target"]
    return {
        "config": {
            "agents": AGENTS,
            "builtin_agents": BUILTIN_AGENTS,
            "repeats": repeats,
            "warmup": warmup,
            "what_if": what_if,
        },
        "variants": {
            v: {
                "label": VARIANTS[v],
                "seconds": stats[v],
                "ratio_to_floor": ratios[v],
                "samples": samples[v],
            }
            for v in variants
        },
        "ratio": ratio,
        "ratio_p95": stats["handoff"]["p95"] / stats["floor_target"]["p95"],
        "timelines": timelines,
        "cpu": cpu,
        "profile": profile_info,
        "headline": [
            {
                "metric": "handoff / target-shape floor latency (medians)",
                "value": round(ratio, 2),
                "target": f"<= {TARGET_RATIO}",
                "verdict": verdict(ratio, TARGET_RATIO, at_most=True),
            },
            {
                "metric": "handoff / bare floor latency (medians)",
                "value": round(ratios["handoff"], 2),
                "target": f"<= {BARE_TARGET_RATIO}",
                "verdict": verdict(ratios["handoff"], BARE_TARGET_RATIO, at_most=True),
            },
            {
                "metric": "target-shape floor / bare floor (what the shape costs)",
                "value": round(ratios["floor_target"], 2),
                "target": "",
                "verdict": "INFO",
            },
        ],
    }


def report(data: dict[str, Any]) -> list[Any]:
    rows = []
    for v, d in data["variants"].items():
        s = d["seconds"]
        target = (
            verdict(d["ratio_to_floor"], BARE_TARGET_RATIO, at_most=True) if v == "handoff" else ""
        )
        rows.append(
            [d["label"], ms(s["median"]), ms(s["p95"]), f"{d['ratio_to_floor']:.2f}x", target]
        )
    tables = [
        table(
            f"{TITLE}; {data['config']['repeats']} runs each, interleaved; handoff / "
            f"target-shape floor {data['ratio']:.2f}x (target <= {TARGET_RATIO}x); handoff / bare "
            f"floor target <= {BARE_TARGET_RATIO}x",
            ["variant", "median (ms)", "p95 (ms)", "/ floor (median)", "target"],
            rows,
        )
    ]
    for key, tl in data["timelines"].items():
        if not tl:
            continue
        tables.append(
            table(
                f"Where the time goes: {key}, median of {tl['runs']} event histories "
                f"(server-side total {tl['total_ms']} ms, {tl['workflow_tasks']:g} workflow tasks, "
                f"{tl.get('eagerly_started', 0):g} of {tl.get('activities', 0):g} activities "
                f"started eagerly; first workflow task {tl.get('first_task_ms', 0)} ms, last "
                f"{tl.get('last_task_ms', 0)} ms on the worker)",
                ["segment", "ms"],
                tl["segments_ms"],
            )
        )
    cpu = data.get("cpu") or {}
    if cpu:
        groups = list(cpu["handoff_cpu_ms_per_run"])
        tables.append(
            table(
                f"CPU per workflow by process ({cpu['runs']} sequential runs; wall per run: "
                f"handoff {cpu['handoff_wall_ms_per_run']} ms, floor {cpu['floor_wall_ms_per_run']} ms)",
                ["process", "handoff CPU ms", "floor CPU ms"],
                [
                    [g, cpu["handoff_cpu_ms_per_run"][g], cpu["floor_cpu_ms_per_run"].get(g, "")]
                    for g in groups
                ]
                + [
                    [f"  {k}", v, cpu["floor_thread_cpu_ms_per_run"].get(k, "")]
                    for k, v in cpu["handoff_thread_cpu_ms_per_run"].items()
                ],
            )
        )
    prof = data.get("profile") or {}
    if prof.get("summary"):
        summary = prof["summary"]
        tables.append(
            table(
                f"py-spy --gil: share of {summary['samples']} samples of the worker process "
                f"({prof['handoffs_profiled']} handoffs), by what is on the stack",
                ["thread / category (inclusive)", "% samples"],
                [
                    *[[f"thread: {k}", v] for k, v in summary.get("threads_pct", {}).items()],
                    *summary["categories_pct"].items(),
                ],
            )
        )
        tables.append(
            table(
                "py-spy: top self time", ["function (file)", "% samples"], summary["top_self_pct"]
            )
        )
        tables.append(
            table(
                "py-spy: our code on the stack (inclusive)",
                ["function (file)", "% samples"],
                summary["top_our_code_inclusive_pct"],
            )
        )
        if summary.get("sandbox_module_reimports_pct"):
            tables.append(
                table(
                    "py-spy: module bodies the workflow sandbox runs again for every new handoff",
                    ["import chain inside the sandbox", "% samples"],
                    summary["sandbox_module_reimports_pct"],
                )
            )
    elif prof:
        tables.append(table("py-spy", ["error"], [[prof.get("error", "no output")]]))
    return tables


def chart(data: dict[str, Any], results_dir: Path | None = None) -> Path:
    fig, (ax1, ax2) = new_figure(2, width=6.5)
    variants = list(data["variants"])
    ax1.boxplot(
        [[x * 1000 for x in data["variants"][v]["samples"]] for v in variants],
        whis=(5, 95),
        showfliers=False,
    )
    ax1.set_xticks(
        range(1, len(variants) + 1),
        [v.replace("whatif_", "what-if\n").replace("_", "\n") for v in variants],
        fontsize=7,
    )
    floor = data["variants"]["floor"]["seconds"]["median"] * 1000
    ax1.axhline(
        floor * BARE_TARGET_RATIO,
        color="g",
        linestyle=":",
        label=f"target {BARE_TARGET_RATIO} x bare floor",
    )
    ax1.set_ylabel("latency (ms), box = quartiles, whiskers = p5..p95")
    ax1.set_title("one workflow, start to result")
    ax1.legend(fontsize=8)
    tl = data["timelines"].get("handoff") or {}
    if tl:
        labels = [s[0] for s in tl["segments_ms"] if not s[0].startswith("  ")]
        values = [s[1] for s in tl["segments_ms"] if not s[0].startswith("  ")]
        ax2.barh(range(len(values)), values)
        ax2.set_yticks(range(len(values)), labels, fontsize=7)
        ax2.invert_yaxis()
        ax2.set_xlabel("ms (median)")
        ax2.set_title("handoff: where the time goes (event history)")
    return save_figure(fig, NAME, results_dir)
