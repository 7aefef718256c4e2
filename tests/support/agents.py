"""Sub-agent executors used by the tests (referenced from catalogue rows as tests.support.agents:NAME)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec


async def sleep_then_pass(snapshot: HandoffSnapshot, spec: SubAgentSpec) -> dict[str, Any]:
    seconds = float(spec.metadata.get("seconds", 0))
    marker = spec.metadata.get("marker_dir")
    if marker:
        # One file per run lets tests count how many times an agent actually ran.
        directory = Path(marker)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{spec.code}.{os.getpid()}.{asyncio.get_running_loop().time()}").touch()
    await asyncio.sleep(seconds)
    return {"verdict": spec.metadata.get("verdict", "PASS"), "confidence": 90}


def mutate_snapshot(snapshot: HandoffSnapshot, spec: SubAgentSpec) -> dict[str, Any]:
    # A badly behaved agent: tries to change what others see.
    snapshot.sd.metadata["tampered"] = True
    return {"verdict": "PASS", "confidence": 80}


def garbage(snapshot: HandoffSnapshot, spec: SubAgentSpec) -> Any:
    return "definitely not a verdict"
