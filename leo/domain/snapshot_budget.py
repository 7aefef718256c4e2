"""The payload budget applied to a handoff's snapshot: refuse an SD too large to hand off, and
give each sub-agent a bounded view of the snapshot instead of a full copy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leo.domain.budget import (
    AGENT_INPUT_BUDGET_BYTES,
    AGENT_VIEW_TEXT_CHARS,
    PAYLOAD_TOO_LARGE,
    PRD_FIELD_LIMITS,
    SD_FIELD_LIMITS,
    SD_TOO_LARGE,
    SNAPSHOT_BUDGET_BYTES,
    BudgetExceededError,
    check_fields,
    check_size,
    check_stories,
    json_size,
    trim_text,
)
from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec

# The parts an agent may name in `leo_sub_agents.input_parts`; the rest of the snapshot (handoff
# type, phase, read time) and the SD's identity are always in its view.
OPTIONAL_PARTS = frozenset({"prd", "stories", "handoffs", "evidence", "retrospectives"})
SD_IDENTITY = frozenset(
    {
        "id",
        "sd_key",
        "title",
        "sd_type",
        "status",
        "current_phase",
        "priority",
        "transition_version",
    }
)
# Below this a trimmed view would cut ids and codes; an SD that needs it is refused instead.
MIN_VIEW_TEXT_CHARS = 256


def check_sd_rows(
    sd: Mapping[str, Any], prd: Mapping[str, Any] | None, stories: Sequence[Mapping[str, Any]]
) -> None:
    """Refuse an SD whose fields cannot be handed off, naming the field and its limit."""
    key = sd.get("sd_key") or sd.get("id")
    check_fields(f"SD {key}", sd, SD_FIELD_LIMITS)
    if prd is not None:
        check_fields(f"PRD {prd.get('id')} of {key}", prd, PRD_FIELD_LIMITS)
    check_stories(f"SD {key}", list(stories))


def check_snapshot(snapshot: HandoffSnapshot) -> None:
    """The whole snapshot, and every agent's view of it, within budget."""
    size = json_size(snapshot)
    if size > SNAPSHOT_BUDGET_BYTES:
        parts = {
            name: json_size(getattr(snapshot, name))
            for name in type(snapshot).model_fields
            if name not in ("handoff_type", "phase", "loaded_at")
        }
        largest = max(parts, key=lambda name: parts[name])
        check_size(
            f"the snapshot of SD {snapshot.sd.sd_key} (largest part `{largest}`, "
            f"{parts[largest]:,} bytes)",
            size,
            SNAPSHOT_BUDGET_BYTES,
            SD_TOO_LARGE,
        )
    for spec in snapshot.sub_agents:
        view = agent_view(snapshot, spec)
        check_size(
            f"the input of sub-agent {spec.code} (its view of SD {snapshot.sd.sd_key})",
            json_size(view),
            AGENT_INPUT_BUDGET_BYTES,
            PAYLOAD_TOO_LARGE,
        )


def agent_view(snapshot: HandoffSnapshot, spec: SubAgentSpec) -> HandoffSnapshot:
    """What one agent gets: the snapshot with only its own catalogue row, and, when that is
    still over AGENT_INPUT_BUDGET_BYTES, long strings trimmed (marked) until it fits.
    Deterministic: workflow code calls it. check_snapshot has refused, before anything ran,
    any snapshot whose views cannot fit."""
    data = snapshot.model_dump(mode="json", exclude={"sub_agents"})
    data["sub_agents"] = [spec.model_dump(mode="json")]
    if spec.input_parts is not None:
        # Only the parts the agent declared it reads (issue 13), and the SD's identity.
        for part in OPTIONAL_PARTS - set(spec.input_parts):
            data.pop(part, None)
        if "sd" not in spec.input_parts:
            data["sd"] = {k: v for k, v in data["sd"].items() if k in SD_IDENTITY}
    chars = AGENT_VIEW_TEXT_CHARS
    view = data
    while json_size(view) > AGENT_INPUT_BUDGET_BYTES and chars >= MIN_VIEW_TEXT_CHARS:
        view = trim_text(data, chars)
        chars //= 2
    return HandoffSnapshot.model_validate(view)


__all__ = ["BudgetExceededError", "agent_view", "check_sd_rows", "check_snapshot"]
