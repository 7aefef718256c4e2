"""The database invariants every fault test checks afterwards, over the SDs it touched.

`check_invariants` returns the violations as readable strings (an empty list means all hold);
`assert_invariants` fails the test with all of them at once. The invariants:

1. `transition_version - 1` equals the SD's number of completed audit rows plus its content
   edits (`sd_changes`) and EXEC reports (every SD starts at version 1; only a completed
   transition, an edit or a report bumps it, each by one).
2. No audit row is left `in_progress`, and none is `failed` unless the caller allows it.
3. Every completed audit row points at exactly one accepted `sd_phase_handoffs` row with the
   same request id and handoff type, and every accepted row belongs to one completed audit:
   one accepted handoff row per completed audit.
4. Completed audits chain: each bumps the version by one, and together with the edits and
   reports they chain from version 1 to the SD's version now, each starting where the one
   before left it; the last audit's post_state is the SD's status and phase now: nothing was
   applied outside an audited transition, an edit or a report.
5. The accepted handoffs form a valid phase chain, in order: each has the from/to phases of
   its type, and each is the successor of the one before it (LEAD-TO-PLAN -> PLAN-TO-EXEC ->
   EXEC-TO-PLAN -> PLAN-TO-LEAD -> LEAD-FINAL-APPROVAL). The first may be any type, since
   test SDs can be created at a later phase.
6. No sub-agent idempotency key occurs twice (the UNIQUE index is there and holds), and, when
   `one_result_per_agent` is set (each SD ran each handoff once), no agent has two rows for
   one SD and handoff type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from tests.support.factories import HANDOFF_PHASES

# The handoff types in chain order.
CHAIN = list(HANDOFF_PHASES)

Queryable = asyncpg.Pool | asyncpg.Connection


async def check_invariants(
    db: Queryable,
    sd_ids: Iterable[str],
    *,
    one_result_per_agent: bool = False,
    allow_failed_audits: bool = False,
) -> list[str]:
    ids = sorted(set(sd_ids))
    violations: list[str] = []
    sds = {
        r["id"]: r
        for r in await db.fetch(
            "SELECT id, status, current_phase, transition_version FROM strategic_directives_v2 "
            "WHERE id = ANY($1::text[])",
            ids,
        )
    }
    violations += [f"{sd_id}: no such SD" for sd_id in ids if sd_id not in sds]

    audits: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in await db.fetch(
        "SELECT id, sd_id, transition_type, status, request_id, pre_state, post_state, handoff_id "
        "FROM sd_transition_audit WHERE sd_id = ANY($1::text[]) "
        "ORDER BY sd_id, started_at, completed_at NULLS LAST, id",
        ids,
    ):
        audits[r["sd_id"]].append(r)
    handoffs: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in await db.fetch(
        "SELECT id, sd_id, handoff_type, from_phase, to_phase, status, request_id "
        "FROM sd_phase_handoffs WHERE sd_id = ANY($1::text[]) "
        "ORDER BY sd_id, coalesce(accepted_at, rejected_at, created_at), created_at, id",
        ids,
    ):
        handoffs[r["sd_id"]].append(r)

    # Version bumps that are not transitions: content edits and EXEC reports, (before, after).
    bumps: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in await db.fetch(
        "SELECT sd_id, version_before, version_after FROM sd_changes "
        "WHERE sd_id = ANY($1::text[]) UNION ALL "
        "SELECT sd_id, transition_version - 1, transition_version FROM sd_exec_reports "
        "WHERE sd_id = ANY($1::text[]) AND transition_version IS NOT NULL",
        ids,
    ):
        bumps[r["sd_id"]].append((r[1], r[2]))

    for sd_id, sd in sds.items():
        violations += _check_sd(
            sd, audits[sd_id], handoffs[sd_id], allow_failed_audits, bumps[sd_id]
        )

    for r in await db.fetch(
        "SELECT idempotency_key, count(*) AS n FROM sub_agent_execution_results "
        "WHERE sd_id = ANY($1::text[]) GROUP BY 1 HAVING count(*) > 1",
        ids,
    ):
        violations.append(f"idempotency key {r['idempotency_key']} occurs {r['n']} times")
    if one_result_per_agent:
        for r in await db.fetch(
            "SELECT sd_id, coalesce(metadata ->> 'handoff_type', phase) AS handoff, "
            "sub_agent_code, count(*) AS n FROM sub_agent_execution_results "
            "WHERE sd_id = ANY($1::text[]) GROUP BY 1, 2, 3 HAVING count(*) > 1",
            ids,
        ):
            violations.append(
                f"{r['sd_id']}: sub-agent {r['sub_agent_code']} has {r['n']} rows "
                f"for {r['handoff']}"
            )
    return violations


def _check_sd(
    sd: asyncpg.Record,
    audits: Sequence[asyncpg.Record],
    handoffs: Sequence[asyncpg.Record],
    allow_failed_audits: bool,
    bumps: Sequence[tuple[int, int]] = (),
) -> list[str]:
    sd_id = sd["id"]
    out: list[str] = []
    completed = [a for a in audits if a["status"] == "completed"]
    if sd["transition_version"] - 1 != len(completed) + len(bumps):
        out.append(
            f"{sd_id}: transition_version {sd['transition_version']} but "
            f"{len(completed)} completed audit rows and {len(bumps)} edits and reports"
        )
    for a in audits:
        if a["status"] == "in_progress" or (a["status"] == "failed" and not allow_failed_audits):
            out.append(f"{sd_id}: audit row {a['id']} ({a['transition_type']}) is {a['status']}")

    accepted = [h for h in handoffs if h["status"] == "accepted"]
    by_id = {h["id"]: h for h in accepted}
    if len(accepted) != len(completed):
        out.append(
            f"{sd_id}: {len(accepted)} accepted handoff rows but {len(completed)} completed audits"
        )
    linked = set()
    for a in completed:
        h = by_id.get(a["handoff_id"])
        if h is None:
            out.append(f"{sd_id}: completed audit {a['id']} has no accepted handoff row")
            continue
        linked.add(h["id"])
        if (
            h["request_id"] != a["request_id"]
            or h["handoff_type"].replace("-", "_") != (a["transition_type"])
        ):
            out.append(f"{sd_id}: audit {a['id']} and handoff {h['id']} disagree")
    out += [
        f"{sd_id}: accepted handoff {h['id']} ({h['handoff_type']}) has no completed audit"
        for h in accepted
        if h["id"] not in linked
    ]

    steps: list[tuple[int, int, str]] = [
        (before, after, "an edit or report") for before, after in bumps
    ]
    for a in completed:
        pre, post = a["pre_state"] or {}, a["post_state"] or {}
        if post.get("sd_version") != pre.get("sd_version", -1) + 1:
            out.append(f"{sd_id}: audit {a['id']} moved version {pre.get('sd_version')} -> {post}")
        steps.append((pre.get("sd_version", -1), post.get("sd_version", -1), f"audit {a['id']}"))
    version = None
    for before, after, what in sorted(steps):
        if version is not None and before != version:
            out.append(f"{sd_id}: {what} started from version {before}, not {version}")
        version = after
    if version is not None and version != sd["transition_version"]:
        out.append(
            f"{sd_id}: the recorded writes end at version {version}, the SD is at "
            f"{sd['transition_version']}"
        )
    if completed:
        post = completed[-1]["post_state"] or {}
        now = (sd["status"], sd["current_phase"])
        last = (post.get("sd_status"), post.get("sd_phase"))
        if now != last:
            out.append(f"{sd_id}: SD is {now} but its last completed audit left it at {last}")

    previous = None
    for h in accepted:
        kind = h["handoff_type"]
        if kind not in HANDOFF_PHASES:
            out.append(f"{sd_id}: accepted handoff of unknown type {kind}")
            continue
        if (h["from_phase"], h["to_phase"]) != HANDOFF_PHASES[kind]:
            out.append(f"{sd_id}: {kind} recorded {h['from_phase']} -> {h['to_phase']}")
        if previous is not None and CHAIN.index(kind) != CHAIN.index(previous) + 1:
            out.append(f"{sd_id}: {kind} accepted right after {previous}")
        previous = kind
    return out


async def assert_invariants(db: Queryable, sd_ids: Iterable[str], **options: Any) -> None:
    ids = list(sd_ids)
    assert ids, "no SDs to check"
    violations = await check_invariants(db, ids, **options)
    assert not violations, f"{len(violations)} invariant violations:\n" + "\n".join(violations)
