"""A project gate plugin used by the tests: LEO_GATE_PLUGINS=tests.support.gate_plugin:register."""

from __future__ import annotations

from typing import Any

from leo.gates.core import Gate, GateContext, GateRegistry


def changelog_recorded(ctx: GateContext) -> dict[str, Any]:
    if ctx.snapshot.sd.metadata.get("changelog"):
        return {"passed": True, "score": 100, "max_score": 100, "issues": []}
    return {
        "passed": False,
        "score": 0,
        "max_score": 100,
        "issues": ["no changelog entry recorded"],
    }


def register(registry: GateRegistry) -> None:
    registry.add("LEAD-TO-PLAN", Gate("PROJECT_CHANGELOG", changelog_recorded, required=True))
