"""Statistics and timing: summaries of samples, PASS/MISS against a target, timed awaits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import numpy as np


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, median, p95 (linear interpolation, so p95 >= median), mean, min, max."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "mean": float("nan")}
    return {
        "n": int(data.size),
        "median": float(np.median(data)),
        "p95": float(np.percentile(data, 95)),
        "mean": float(data.mean()),
        "min": float(data.min()),
        "max": float(data.max()),
    }


def verdict(value: float, target: float, *, at_most: bool) -> str:
    ok = value <= target if at_most else value >= target
    return "PASS" if ok else "MISS"


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f}"


async def timed(coro: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def concurrent_batch(
    jobs: Sequence[Callable[[], Awaitable[Any]]],
) -> tuple[float, list[float]]:
    """Start every job at once; the batch's wall time and each job's completion time."""
    started = time.perf_counter()

    async def one(job: Callable[[], Awaitable[Any]]) -> float:
        await job()
        return time.perf_counter() - started

    done = await asyncio.gather(*(one(j) for j in jobs))
    return time.perf_counter() - started, list(done)
