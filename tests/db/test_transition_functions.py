"""The contract every fn_atomic_<handoff>_transition keeps, against a real PostgreSQL, once per
handoff (the per-handoff data is in tests/support/contracts.py; each handoff's own behaviour is
in tests/db/test_<handoff>_function.py)."""

from __future__ import annotations

import asyncpg
import pytest

from leo.domain.handoffs import HandoffType
from tests.support.contracts import CONTRACTS, Contract
from tests.support.db import (
    Fault,
    assert_claim_holder_passes,
    assert_fault_rolls_back,
    assert_idempotent_on_request_id,
    assert_refuses_foreign_claim,
    assert_refuses_unknown_sd,
    assert_refuses_version_conflict,
    assert_refuses_wrong_phase,
    claim,
    new_session_id,
)
from tests.support.factories import create_sd

EVERY_HANDOFF = [pytest.param(c, id=c.handoff) for c in CONTRACTS.values()]
EVERY_FAULT = [
    pytest.param(c, fault, id=f"{c.handoff}-{fault.id}")
    for c in CONTRACTS.values()
    for fault in c.faults
]
EVERY_WRONG_PHASE = [
    pytest.param(c, status, phase, id=f"{c.handoff}-{status}-{phase}")
    for c in CONTRACTS.values()
    for status, phase in c.wrong_phases
]


def test_there_is_one_contract_per_handoff_type() -> None:
    assert set(CONTRACTS) == {h.value for h in HandoffType}


@pytest.mark.parametrize(("contract", "fault"), EVERY_FAULT)
async def test_rolls_back_everything_when_a_step_fails(
    db_pool: asyncpg.Pool, contract: Contract, fault: Fault
) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff, **contract.fault_rows)
    if not contract.fault_under_claim:
        await assert_fault_rolls_back(db_pool, contract.handoff, sd, fault)
        return
    # Held by the caller, so the release step has a claim to release (and a row for the fault).
    session = new_session_id()
    assert (await claim(db_pool, sd.id, session))["success"] is True
    await assert_fault_rolls_back(db_pool, contract.handoff, sd, fault, session_id=session)
    released = await db_pool.fetchval(
        "SELECT release_reason FROM claude_sessions WHERE session_id = $1", session
    )
    assert released == "completed"


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_is_idempotent_on_request_id(db_pool: asyncpg.Pool, contract: Contract) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff, **contract.idempotency_rows)
    await assert_idempotent_on_request_id(db_pool, contract.handoff, sd)


@pytest.mark.parametrize(("contract", "status", "phase"), EVERY_WRONG_PHASE)
async def test_refuses_a_wrong_phase_naming_expected_and_actual(
    db_pool: asyncpg.Pool, contract: Contract, status: str, phase: str
) -> None:
    sd = await create_sd(db_pool, status=status, phase=phase, **contract.wrong_phase_rows)
    await assert_refuses_wrong_phase(
        db_pool,
        contract.handoff,
        sd,
        expected=contract.expected,
        actual_status=status,
        actual_phase=phase,
    )


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_refuses_a_stale_expected_version(db_pool: asyncpg.Pool, contract: Contract) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff)
    await assert_refuses_version_conflict(db_pool, contract.handoff, sd)


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_refuses_an_unknown_sd(db_pool: asyncpg.Pool, contract: Contract) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff)
    await assert_refuses_unknown_sd(db_pool, contract.handoff, sd)


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_refuses_a_session_while_another_holds_a_live_claim(
    db_pool: asyncpg.Pool, contract: Contract
) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff, **contract.foreign_claim_rows)
    await assert_refuses_foreign_claim(db_pool, contract.handoff, sd)


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_lets_the_claim_holder_through(db_pool: asyncpg.Pool, contract: Contract) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff)
    await assert_claim_holder_passes(db_pool, contract.handoff, sd)
    if contract.releases_claims:
        active = await db_pool.fetchval(
            "SELECT count(*) FROM claude_sessions WHERE sd_id = $1 AND status = 'active'", sd.id
        )
        assert active == 0
