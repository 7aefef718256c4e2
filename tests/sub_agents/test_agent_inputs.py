"""Issue 13: an agent's input is what it reads; its input hash (the reuse key) changes exactly
when that input does. Issue 17 item 4: the hash covers every part the agent declares, the key
is the plan's (SD, phase, agent, time bucket, input), and an agent whose verdict depends on the
world is reused only with a fingerprint of it."""

from __future__ import annotations

import hashlib

from activities.agent_inputs import agent_keys, input_hash
from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
from leo.domain.snapshot_budget import agent_view
from leo.sub_agents.fingerprint import world_fingerprint
from tests.support import builders


def test_declared_parts_narrow_the_view_to_them_and_the_sd_identity() -> None:
    snap = builders.snapshot(evidence=(builders.evidence("TESTING", "PASS"),))
    stories_only = builders.spec("STORIES_ONLY", input_parts=("stories",))

    view = agent_view(snap, stories_only)

    assert view.stories == snap.stories
    assert view.prd is None and view.evidence == () and view.handoffs == ()
    # The SD keeps its identity and loses the rest.
    assert (view.sd.id, view.sd.sd_key, view.sd.sd_type) == (
        snap.sd.id,
        snap.sd.sd_key,
        snap.sd.sd_type,
    )
    assert view.sd.description == "" and view.sd.metadata == {}
    # Without a declaration, the agent sees everything, as before.
    full = agent_view(snap, builders.spec("ALL"))
    assert full.prd == snap.prd and full.evidence == snap.evidence


def test_input_hash_follows_the_parts_the_agent_reads() -> None:
    snap = builders.snapshot()
    reads_stories = builders.spec("STORIES_ONLY", input_parts=("stories",))
    reads_all = builders.spec("ALL")
    changed_prd = snap.model_copy(
        update={"prd": snap.prd.model_copy(update={"executive_summary": "rewritten"})}
        if snap.prd
        else {}
    )

    # A PRD change is no change for an agent that reads only the stories...
    assert input_hash(changed_prd, reads_stories) == input_hash(snap, reads_stories)
    # ...and a change for one that reads everything.
    assert input_hash(changed_prd, reads_all) != input_hash(snap, reads_all)


def test_input_hash_covers_every_part_the_agent_declares() -> None:
    """Review F4: evidence, handoff records and the read time were left out of the hash even
    for agents that read them, so a stale verdict could be reused."""
    snap = builders.snapshot()
    reads_all = builders.spec("ALL")
    reads_evidence = builders.spec("EVIDENCE", input_parts=("evidence",))
    reads_handoffs = builders.spec("HANDOFFS", input_parts=("handoffs",))
    changes = {
        "loaded_at": snap.model_copy(update={"loaded_at": builders.at(120)}),
        "evidence": snap.model_copy(update={"evidence": (builders.evidence("ALL", "FAIL"),)}),
        "handoffs": snap.model_copy(
            update={"handoffs": (builders.handoff(snap.handoff_type, status="rejected"),)}
        ),
    }
    # An agent that declares nothing reads everything: each change is a new input.
    for part, changed in changes.items():
        assert input_hash(changed, reads_all) != input_hash(snap, reads_all), part
    # A declared part is hashed; an undeclared one, and the read time, are not.
    assert input_hash(changes["evidence"], reads_evidence) != input_hash(snap, reads_evidence)
    assert input_hash(changes["handoffs"], reads_evidence) == input_hash(snap, reads_evidence)
    assert input_hash(changes["loaded_at"], reads_evidence) == input_hash(snap, reads_evidence)
    assert input_hash(changes["handoffs"], reads_handoffs) != input_hash(snap, reads_handoffs)


def reusable(code: str, **overrides: object) -> SubAgentSpec:
    fields: dict[str, object] = {
        "executor_kind": "builtin",
        "executor_ref": "x",
        "reuse_window_seconds": 3600,
        "input_parts": ("sd",),
    }
    return builders.spec(code, **{**fields, **overrides})


def test_keys_are_per_attempt_and_per_input() -> None:
    snap = builders.snapshot(sub_agents=(reusable("A"), reusable("B")))
    first = agent_keys(snap, "attempt-1")
    second = agent_keys(snap, "attempt-2")

    assert first["A"].idempotency_key != second["A"].idempotency_key
    assert first["A"].reuse_key is not None
    assert first["A"].reuse_key == second["A"].reuse_key
    assert first["A"].reuse_key != first["B"].reuse_key


def test_the_reuse_key_is_the_plans_key_with_the_bucket_width_of_the_catalogue_row() -> None:
    """Review F11: canonical SD id, phase, agent code and time bucket, plus the input hash."""
    hourly = reusable("A")
    snap = builders.snapshot(sub_agents=(hourly,), loaded_at=builders.at(0))

    def key(
        snapshot: HandoffSnapshot, fingerprints: dict[str, str | None] | None = None
    ) -> str | None:
        return agent_keys(snapshot, "attempt", fingerprints)["A"].reuse_key

    base = key(snap)
    # The same bucket: the same key, whatever the attempt; the next bucket: a new one.
    assert key(snap.model_copy(update={"loaded_at": builders.at(59)})) == base
    assert key(snap.model_copy(update={"loaded_at": builders.at(60)})) != base
    # The width is the catalogue row's: with ten minutes, minute 30 is another bucket.
    short = snap.model_copy(update={"sub_agents": (reusable("A", reuse_window_seconds=600),)})
    assert key(short) != key(short.model_copy(update={"loaded_at": builders.at(30)}))
    # A changed input always runs again; 0 never reuses.
    changed = snap.model_copy(update={"sd": snap.sd.model_copy(update={"scope": "wider"})})
    assert key(changed) != base
    never = snap.model_copy(update={"sub_agents": (reusable("A", reuse_window_seconds=0),)})
    assert key(never) is None


def test_an_agent_that_reads_the_world_is_reused_only_with_its_fingerprint() -> None:
    command = reusable("A", executor_kind="command", executor_ref=["sh", "-c", "true"])
    snap = builders.snapshot(sub_agents=(command,))
    # No fingerprint of the world outside the snapshot: it always runs.
    assert agent_keys(snap, "attempt")["A"].reuse_key is None
    head_1 = agent_keys(snap, "attempt", {"A": "commit-1"})["A"].reuse_key
    head_2 = agent_keys(snap, "attempt", {"A": "commit-2"})["A"].reuse_key
    assert head_1 is not None and head_2 is not None and head_1 != head_2
    python = reusable("P", executor_kind="python", executor_ref="m:f")
    assert agent_keys(builders.snapshot(sub_agents=(python,)), "a")["P"].reuse_key is None


async def test_the_fingerprint_is_the_hash_of_what_the_command_printed() -> None:
    spec = builders.spec("FP", reuse_fingerprint=("sh", "-c", "echo abc123"))
    assert await world_fingerprint(spec) == hashlib.sha256(b"abc123\n").hexdigest()
    failing = builders.spec("FP", reuse_fingerprint=("sh", "-c", "echo x; exit 3"))
    assert await world_fingerprint(failing) is None
    missing = builders.spec("FP", reuse_fingerprint=("/no/such/command",))
    assert await world_fingerprint(missing) is None
    assert await world_fingerprint(builders.spec("NONE")) is None
