"""py-spy around a block of benchmark work, and a summary of its raw (collapsed) samples."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.machine import PROJECT_ROOT

FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")

# Inclusive buckets: a sample counts for every bucket one of its frames falls in.
# A needle "fn:NAME" matches a function name instead of a path.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "new workflow instance (sandbox set-up, module re-import)",
        ("fn:_WorkflowWorker._create_workflow_instance",),
    ),
    ("Temporal workflow sandbox", ("temporalio/worker/workflow_sandbox",)),
    ("Temporal workflow activations", ("temporalio/worker/_workflow",)),
    ("Temporal activity worker", ("temporalio/worker/_activity",)),
    ("Temporal client calls", ("temporalio/client",)),
    ("payload conversion", ("temporalio/converter", "temporalio/contrib/pydantic")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("asyncpg", ("asyncpg/",)),
    ("our workflows (workflows/)", ("workflows/",)),
    ("our activities (activities/)", ("activities/",)),
    ("gates (leo/gates)", ("leo/gates/",)),
    ("sub-agent executors (leo/sub_agents)", ("leo/sub_agents/",)),
    (
        "benchmark harness",
        (
            "bench/env.py",
            "bench/fixtures.py",
            "bench/stats.py",
            "bench/monitor.py",
            "bench/overhead.py",
            "bench/profiling.py",
        ),
    ),
)
OUR_CODE = ("activities/", "workflows/", "leo/", "db/", "worker.py", "bench/agents.py")


def py_spy_binary() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("py-spy")


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "lib/python3.12/"):
        if marker in path:
            return path.split(marker, 1)[1]
    root = str(PROJECT_ROOT) + "/"
    return path.removeprefix(root)


@contextlib.asynccontextmanager
async def py_spy(output: Path, *, rate: int = 250) -> AsyncIterator[dict[str, Any]]:
    """Sample this process while the block runs. Yields a dict filled with the outcome."""
    info: dict[str, Any] = {"output": str(output), "rate": rate, "ok": False}
    binary = py_spy_binary()
    if binary is None:
        info["error"] = "py-spy not found"
        yield info
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(os.getpid()),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        # Only the thread holding the GIL: samples then follow Python CPU time, not threads
        # that merely wait for the GIL.
        "--gil",
        "--output",
        str(output),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # let it attach
    try:
        yield info
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
        info["ok"] = _written(output)
        if not info["ok"]:
            info["error"] = (err or b"").decode(errors="replace").strip()[-500:]


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def summarize_raw(path: Path, *, top: int = 15) -> dict[str, Any]:
    """Self-time and inclusive leaders, and the share of samples per category."""
    total = 0
    self_counts: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    # Module bodies the workflow sandbox executes again for each new workflow run.
    sandbox_imports: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for raw in stack.split(";"):
            match = FRAME.match(raw)
            if match is None:
                frames.append((raw, ""))
            else:
                frames.append((match["func"], _short(match["path"])))
        if not frames:
            continue
        root = frames[0][0]
        if root in ("_run_module_as_main", "<module>"):
            threads["main thread (the asyncio event loop)"] += count
        elif root == "Thread._bootstrap":
            threads["other Python threads (workflow activations)"] += count
        else:
            threads["unknown (the sampler lost the stack's root)"] += count
        func, where = frames[-1]
        self_counts[f"{func} ({where})"] += count
        seen: set[str] = set()
        for func, where in frames:
            name = f"{func} ({where})"
            if name not in seen and where.startswith(OUR_CODE):
                seen.add(name)
                ours[name] += count
        if any("workflow_sandbox" in w for _, w in frames):
            modules = [w for f, w in frames if f == "<module>" and w.endswith(".py")]
            modules = [m for m in modules if not m.startswith("bench/__main__")]
            if modules:
                sandbox_imports[" > ".join(modules)] += count
        # Paths are matched from their start (" /pydantic/" is not "contrib/pydantic/").
        paths = "".join(f" /{w}" for _, w in frames)
        funcs = {f for f, _ in frames}
        for label, needles in CATEGORIES:
            if any(
                (n[3:] in funcs) if n.startswith("fn:") else (f" /{n}" in paths) for n in needles
            ):
                categories[label] += count

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "threads_pct": {k: pct(v) for k, v in threads.most_common()},
        "categories_pct": {k: pct(v) for k, v in categories.most_common()},
        "top_self_pct": [[k, pct(v)] for k, v in self_counts.most_common(top)],
        "sandbox_module_reimports_pct": [[k, pct(v)] for k, v in sandbox_imports.most_common(top)],
        "top_our_code_inclusive_pct": [[k, pct(v)] for k, v in ours.most_common(top)],
    }
