"""The sub-agents' side of the snapshot step (issue 13): each agent's keys, the results already
recorded for them (this attempt's, or a reusable one on the same input), and the built-in rule
agents evaluated in place. Agents then run without a database round trip of their own; the
commit step records every new result with the decision (db/functions/commit_handoff.sql).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from db.sub_agent_results import find_recorded_results
from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
from leo.domain.snapshot_budget import agent_view
from leo.domain.verdicts import AgentOutput, SubAgentResult, Verdict, error_output, fit_result
from leo.infra import metrics, telemetry
from leo.sub_agents.executors import ExecutorConfigError, builtin_rule
from leo.sub_agents.fingerprint import world_fingerprints

if TYPE_CHECKING:
    from db.pool import Executor

# Never an agent's input: an agent runs only when the handoff was not accepted before.
NOT_AGENT_INPUT = {"already_accepted"}


class AgentKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    # This handoff attempt's key (canonical SD id, phase, code, attempt).
    idempotency_key: str
    # The input's key (canonical SD id, phase, code, time bucket, hash of the agent's input
    # and world fingerprint); None when the agent is never reused.
    reuse_key: str | None = None


class PreparedHandoff(BaseModel):
    """The snapshot, every agent's keys, and the results that need no run: recorded for this
    attempt, reusable from an earlier one, or a built-in rule evaluated on the snapshot."""

    snapshot: HandoffSnapshot
    keys: dict[str, AgentKey] = Field(default_factory=dict)
    ready: dict[str, SubAgentResult] = Field(default_factory=dict)


class SubAgentRecord(BaseModel):
    """One result row for the commit step to record."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    reuse_key: str | None = None
    code: str
    name: str
    verdict: str
    confidence: int
    critical_issues: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)
    detailed_analysis: str = ""
    execution_time: float = 0.0
    justification: str | None = None
    conditions: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def sub_agent_idempotency_key(canonical_sd_id: str, phase: str, code: str, attempt: str) -> str:
    """Stable across activity retries, worker crashes and replays of one handoff attempt
    (`attempt` is the workflow run's start time), and independent of how the caller spelled
    the SD id."""
    raw = f"{canonical_sd_id}::{phase}::{code}::{attempt}"
    return "idmp_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def input_hash(snapshot: HandoffSnapshot, spec: SubAgentSpec) -> str:
    """sha256 of the agent's input: every part of the snapshot it declares it reads (all of
    them, the read time, evidence and handoff records included, when it declares none) and its
    own catalogue row (without the bucket width itself)."""
    exclude = set(NOT_AGENT_INPUT)
    if spec.input_parts is not None:
        # Declared parts: the view holds only those (agent_view); the read time it still
        # carries is not one of them.
        exclude.add("loaded_at")
    view = agent_view(snapshot, spec).model_dump(mode="json", exclude=exclude)
    for row in view.get("sub_agents", []):
        row.pop("reuse_window_seconds", None)
    raw = json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def time_bucket(snapshot: HandoffSnapshot, width_seconds: int) -> int:
    """The plan's time bucket: the snapshot's database read time, in buckets of the agent's
    width (LEO shipped one hour)."""
    return int(snapshot.loaded_at.timestamp()) // width_seconds


def reuse_key(
    canonical_sd_id: str,
    phase: str,
    code: str,
    bucket: int,
    digest: str,
    fingerprint: str | None = None,
) -> str:
    raw = f"{canonical_sd_id}::{phase}::{code}::{bucket}::{digest}::{fingerprint or ''}"
    return "reuse_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def agent_reuse_key(
    snapshot: HandoffSnapshot, spec: SubAgentSpec, fingerprint: str | None
) -> str | None:
    """None when the agent is never reused: no bucket width, or a command or python agent
    (whose verdict may depend on the world outside the snapshot) without a fingerprint of
    that world."""
    if spec.reuse_window_seconds <= 0:
        return None
    if spec.executor_kind != "builtin" and fingerprint is None:
        return None
    return reuse_key(
        snapshot.sd.id,
        snapshot.phase,
        spec.code,
        time_bucket(snapshot, spec.reuse_window_seconds),
        input_hash(snapshot, spec),
        fingerprint,
    )


def agent_keys(
    snapshot: HandoffSnapshot, attempt: str, fingerprints: dict[str, str | None] | None = None
) -> dict[str, AgentKey]:
    sd, phase = snapshot.sd.id, snapshot.phase
    prints = fingerprints or {}
    return {
        s.code: AgentKey(
            idempotency_key=sub_agent_idempotency_key(sd, phase, s.code, attempt),
            reuse_key=agent_reuse_key(snapshot, s, prints.get(s.code)),
        )
        for s in snapshot.sub_agents
    }


def result_from_row(spec: SubAgentSpec, row: Any) -> SubAgentResult:
    conditions = row["conditions"]
    return fit_result(
        SubAgentResult(
            code=spec.code,
            name=spec.name,
            priority=spec.priority,
            verdict=Verdict(row["verdict"]),
            confidence=row["confidence"],
            critical_issues=tuple(str(i) for i in row["critical_issues"]),
            warnings=tuple(str(i) for i in row["warnings"]),
            recommendations=tuple(str(i) for i in row["recommendations"]),
            detailed_analysis=row["detailed_analysis"],
            justification=row["justification"],
            conditions=tuple(conditions) if conditions is not None else None,
            execution_time=row["execution_time"],
            reused=True,
            result_id=str(row["id"]),
        )
    )


def evaluate_builtin(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> SubAgentResult:
    """A built-in rule is a pure function of the agent's view: evaluated here, in the snapshot
    step, instead of in an activity of its own. Same output as the activity would give."""
    started = time.monotonic()
    try:
        output = builtin_rule(spec)(agent_view(snapshot, spec))
    except ExecutorConfigError as exc:
        output = error_output(str(exc))
    except Exception as exc:
        output = error_output(f"{spec.code} raised {type(exc).__name__}: {exc}")
    return fit_result(agent_result(spec, output, round(time.monotonic() - started, 3)))


def agent_result(
    spec: SubAgentSpec, output: AgentOutput, elapsed: float, *, result_id: str | None = None
) -> SubAgentResult:
    return SubAgentResult(
        code=spec.code,
        name=spec.name,
        priority=spec.priority,
        verdict=output.verdict,
        confidence=output.confidence,
        critical_issues=tuple(output.critical_issues),
        warnings=tuple(output.warnings),
        recommendations=tuple(output.recommendations),
        detailed_analysis=output.detailed_analysis,
        justification=output.justification,
        conditions=tuple(output.conditions) if output.conditions is not None else None,
        execution_time=elapsed,
        result_id=result_id,
    )


async def prepare_agents(
    conn: Executor,
    snapshot: HandoffSnapshot,
    attempt: str,
    recorded: Mapping[str, Any] | None = None,
) -> PreparedHandoff:
    """`recorded`: the rows already read under this attempt's idempotency keys (by key), when
    the snapshot's read fetched them (fn_prepare_handoff); then the database is asked again
    only for agents that have none and may reuse a result (a reuse key)."""
    fingerprints = await world_fingerprints(
        s for s in snapshot.sub_agents if s.reuse_window_seconds > 0
    )
    keys = agent_keys(snapshot, attempt, fingerprints)
    specs = {s.code: s for s in snapshot.sub_agents}
    ready: dict[str, SubAgentResult] = {}
    codes = list(specs)
    if recorded is not None:
        for code in codes:
            row = recorded.get(keys[code].idempotency_key)
            if row is not None:
                ready[code] = result_from_row(specs[code], row)
        codes = [c for c in codes if c not in ready and keys[c].reuse_key is not None]
    if codes:
        rows = await find_recorded_results(
            conn,
            codes,
            [keys[c].idempotency_key for c in codes],
            [keys[c].reuse_key for c in codes],
        )
        ready.update({r["code"]: result_from_row(specs[r["code"]], r) for r in rows})
    for code, spec in specs.items():
        if code not in ready and spec.executor_kind == "builtin":
            # The same span and metric as an agent activity's, under the snapshot step.
            with telemetry.span(
                f"leo.sub_agent {code}", {"leo.sub_agent": code, "leo.sd_id": snapshot.sd.id}
            ) as span:
                ready[code] = result = evaluate_builtin(spec, snapshot)
                span.set_attribute("leo.verdict", result.verdict.value)
            metrics.record_sub_agent(code, result.verdict.value, result.execution_time)
    return PreparedHandoff(snapshot=snapshot, keys=keys, ready=ready)


def record_for(
    result: SubAgentResult, key: AgentKey, metadata: dict[str, Any]
) -> SubAgentRecord | None:
    """The row to record for a result, or None when there is nothing new to record (the agent
    did not run, or the result came from the database)."""
    if not result.ran or result.reused or result.result_id is not None:
        return None
    return SubAgentRecord(
        idempotency_key=key.idempotency_key,
        reuse_key=key.reuse_key,
        code=result.code,
        name=result.name,
        verdict=result.verdict.value,
        confidence=result.confidence,
        critical_issues=list(result.critical_issues),
        warnings=list(result.warnings),
        recommendations=list(result.recommendations),
        detailed_analysis=result.detailed_analysis,
        execution_time=result.execution_time,
        justification=result.justification,
        conditions=list(result.conditions) if result.conditions is not None else None,
        metadata=metadata,
    )
