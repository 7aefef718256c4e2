"""Issue 13: an agent's input is what it reads; its input hash (the reuse key) changes exactly
when that input does."""

from __future__ import annotations

from activities.agent_inputs import agent_keys, input_hash
from leo.domain.snapshot_budget import agent_view
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
    # What the machinery writes between attempts (evidence, handoff records, the read time)
    # is not the agent's input.
    later = snap.model_copy(
        update={
            "loaded_at": builders.at(120),
            "evidence": (builders.evidence("ALL", "PASS"),),
            "handoffs": (builders.handoff(snap.handoff_type, status="rejected"),),
        }
    )
    assert input_hash(later, reads_all) == input_hash(snap, reads_all)


def test_keys_are_per_attempt_and_per_input() -> None:
    snap = builders.snapshot(sub_agents=(builders.spec("A"), builders.spec("B")))
    first = agent_keys(snap, "attempt-1")
    second = agent_keys(snap, "attempt-2")

    assert first["A"].idempotency_key != second["A"].idempotency_key
    assert first["A"].reuse_key == second["A"].reuse_key
    assert first["A"].reuse_key != first["B"].reuse_key
