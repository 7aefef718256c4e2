"""The benchmarks still run: the floor workflow, and the overhead benchmark at a tiny size.

Not a performance test: nothing here asserts a speed, only that the figures come back sane.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

import bench
from bench import overhead
from bench.env import BenchEnv
from bench.floor import FloorInput, build_floor_worker, run_floor
from bench.stats import summarize
from leo.dev_stack import Stack

ROOT = Path(__file__).resolve().parent.parent


def test_summarize_orders_median_and_p95() -> None:
    stats = summarize([0.3, 0.1, 0.2, 0.9])
    assert stats["n"] == 4
    assert stats["min"] <= stats["median"] <= stats["p95"] <= stats["max"]
    assert set(bench.BENCHMARKS) == {
        "parallel",
        "overhead",
        "throughput",
        "transitions",
        "scaling",
        "history",
        "adopt",
    }


def test_bench_uses_nothing_from_the_test_suite() -> None:
    # Read, not imported: a function-level import or a catalogue row's executor ref
    # ("tests.support.agents:...") would tie the benchmarks to the test suite just the same.
    found = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value.split(":", 1)[0]] if ":" in node.value else []
            else:
                continue
            found += [
                f"{path.name}:{node.lineno}: {name}"
                for name in names
                if name == "tests" or name.startswith("tests.")
            ]
    assert found == []


async def test_floor_and_overhead_benchmark_on_the_session_stack(
    stack: Stack, client: Client, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    floor_queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
    async with build_floor_worker(client, floor_queue):
        # 1 sequential + 3 parallel + 1 sequential activities, the last two as local ones.
        ran = await run_floor(client, floor_queue, FloorInput(parallel=3, before=1, after=1))
        assert ran == 5
        assert await run_floor(client, floor_queue, FloorInput(3, 0.0, 1, 1, local=True)) == 5

        env = BenchEnv(
            client=client,
            pool=db_pool,
            task_queue=task_queue,
            floor_task_queue=floor_queue,
            database_url=stack.database_url,
            temporal_address=stack.temporal_address,
        )
        data = await overhead.measure(env, repeats=2, warmup=1, timeline_runs=1, what_if=False)

    assert set(data["variants"]) == {"handoff", "floor", "floor_target"}
    for variant in data["variants"].values():
        seconds = variant["seconds"]
        assert seconds["n"] == 2
        assert 0 < seconds["median"] <= seconds["p95"]
        assert variant["ratio_to_floor"] > 0
    assert data["ratio"] > 0
    assert data["headline"][0]["verdict"] in ("PASS", "MISS")
    handoff = data["timelines"]["handoff"]
    # The bare floor's shape (issue 19): snapshot, gates and commit are local activities
    # (markers, not activity tasks), so the server sees one stage, the agents.
    assert handoff["workflow_tasks"] >= 2
    stages = [label for label, _ in handoff["segments_ms"] if label.startswith("stage ")]
    # Only the agents are activities: the built-in rules run in the snapshot step.
    assert stages == ["stage 1: run_sub_agent x5"]
    assert overhead.report(data)
    assert overhead.chart(data, tmp_path).is_file()
