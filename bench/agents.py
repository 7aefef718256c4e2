"""The sub-agent the benchmarks put in the catalogue (python executor, `bench.agents:sleep`):
it sleeps `metadata.seconds` (0 for a no-op) and passes."""

from __future__ import annotations

import asyncio
from typing import Any

from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec


async def sleep(snapshot: HandoffSnapshot, spec: SubAgentSpec) -> dict[str, Any]:
    await asyncio.sleep(float(spec.metadata.get("seconds", 0)))
    return {"verdict": "PASS", "confidence": 90}
