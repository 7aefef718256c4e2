"""Runs benchmarks, each on its own fresh stack, and writes their JSON and charts."""

from __future__ import annotations

import importlib
import inspect
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import BENCHMARKS
from bench.env import bench_env
from bench.machine import load_now, machine_info
from bench.monitor import ActivityFailures
from bench.output import RESULTS_DIR, console, envelope, show, table, write_json

__all__ = ["BENCHMARKS", "RESULTS_DIR", "run_all", "run_one"]


def module(name: str) -> ModuleType:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return importlib.import_module(f"bench.{name}")


async def run_one(
    name: str, *, quick: bool, results_dir: Path = RESULTS_DIR, profile: bool = False
) -> dict[str, Any]:
    mod = module(name)
    sizes = dict(mod.SIZES["quick" if quick else "full"])
    accepted = inspect.signature(mod.measure).parameters
    if "profile" in accepted:
        sizes["profile"] = profile
    if "results_dir" in accepted:
        sizes["results_dir"] = results_dir
    console.rule(f"[bold]{mod.TITLE}[/bold] ({'quick' if quick else 'full'})")
    started = time.perf_counter()
    load_before = load_now()
    with ActivityFailures() as failures:
        async with bench_env() as env:
            setup = time.perf_counter() - started
            data = await mod.measure(env, **sizes)
            notes = dict(env.notes)
    elapsed = time.perf_counter() - started
    data = envelope(
        name,
        quick,
        {
            **data,
            "stack": notes,
            "activity_failures": dict(failures.counts),
            "elapsed_s": round(elapsed, 1),
            "stack_setup_s": round(setup, 1),
            "loadavg_before": load_before,
            "loadavg_after": load_now(),
        },
    )
    json_path = write_json(name, data, results_dir)
    png_path = mod.chart(data, results_dir)
    show(*mod.report(data))
    if failures.counts:
        console.print(
            f"[yellow]failed activity attempts during this benchmark (retried by Temporal): "
            f"{dict(failures.counts)}[/yellow]"
        )
    console.print(
        f"[dim]{elapsed:.0f} s; load average before {load_before}, after {data['loadavg_after']}; "
        f"wrote {json_path} and {png_path}[/dim]"
    )
    return data


async def run_all(
    names: list[str], *, quick: bool, results_dir: Path = RESULTS_DIR, profile: bool = False
) -> dict[str, Any]:
    started = time.perf_counter()
    machine = machine_info()
    console.print(
        f"[bold]LEO benchmarks[/bold] ({'quick' if quick else 'full'}): {', '.join(names)} on "
        f"{machine['nproc']} x {machine['cpu_model']}, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, temporalio {machine['temporalio']}, {machine['temporal_cli']}"
    )
    results = {}
    for name in names:
        results[name] = await run_one(name, quick=quick, results_dir=results_dir, profile=profile)
    headlines = [
        {"benchmark": name, **row} for name, data in results.items() for row in data["headline"]
    ]
    summary = envelope(
        "summary",
        quick,
        {
            "machine": machine,
            "benchmarks": names,
            "elapsed_s": round(time.perf_counter() - started, 1),
            "headline": headlines,
        },
    )
    path = write_json("summary", summary, results_dir)
    show(
        table(
            f"Summary ({summary['elapsed_s']:.0f} s)",
            ["benchmark", "figure", "value", "target", "verdict"],
            [
                [h["benchmark"], h["metric"], h["value"], h["target"], h["verdict"]]
                for h in headlines
            ],
        )
    )
    console.print(f"[dim]wrote {path}[/dim]")
    return summary
