"""The thin query modules the CLI, the API and the demo use: db/sds.py, db/sd_history.py and
db/catalogue.py. An SD named by id or sd_key resolves by `leo_resolve_sd_id` everywhere."""

from __future__ import annotations

import asyncpg

from db.catalogue import upsert_command_sub_agent
from db.sd_history import get_audit_trail, get_sd_status
from db.sds import create_sd, get_sd, get_sd_details, resolve_sd_id
from leo.domain.sd_spec import SdSpec
from tests.support.factories import unique_key


async def test_an_id_that_is_another_sds_key_names_the_sd_with_that_id_everywhere(
    db_pool: asyncpg.Pool,
) -> None:
    # A's id is B's sd_key: the id wins, in SQL and in every query that takes an SD reference.
    shared, a_key, b_id = unique_key("SD-ID"), unique_key("SD-A"), unique_key("SD-B")
    async with db_pool.acquire() as conn:
        a = await create_sd(conn, SdSpec(id=shared, sd_key=a_key, title="A"))
        b = await create_sd(conn, SdSpec(id=b_id, sd_key=shared, title="B"))
    assert (a.sd.id, b.sd.id) == (shared, b_id)

    assert await db_pool.fetchval("SELECT leo_resolve_sd_id($1)", shared) == shared
    assert await resolve_sd_id(db_pool, shared) == shared
    found = await get_sd(db_pool, shared)
    assert found is not None and found.title == "A"
    details = await get_sd_details(db_pool, shared)
    assert details is not None and details.sd.sd_key == a_key
    status = await get_sd_status(db_pool, shared)
    assert status is not None and status.sd_key == a_key
    trail = await get_audit_trail(db_pool, shared)
    assert trail is not None and trail.sd_id == shared

    # B is reachable by its own id, and A by its sd_key.
    assert await resolve_sd_id(db_pool, b_id) == b_id
    assert await resolve_sd_id(db_pool, a_key) == shared
    assert await resolve_sd_id(db_pool, unique_key("SD-NONE")) is None
    assert await get_sd_status(db_pool, unique_key("SD-NONE")) is None


async def test_upserting_a_command_sub_agent_updates_and_reactivates_it(
    db_pool: asyncpg.Pool,
) -> None:
    code = unique_key("TEST_AGENT").replace("-", "_")
    try:
        await upsert_command_sub_agent(
            db_pool, code=code, name="first", timeout_seconds=30, argv=["{python}", "a.py"]
        )
        await db_pool.execute("UPDATE leo_sub_agents SET active = false WHERE code = $1", code)
        await upsert_command_sub_agent(
            db_pool, code=code, name="second", timeout_seconds=45, argv=["{python}", "b.py"]
        )
        row = await db_pool.fetchrow(
            "SELECT name, priority, timeout_seconds, executor_kind, executor_ref, active "
            "FROM leo_sub_agents WHERE code = $1",
            code,
        )
        assert row is not None
        assert dict(row) == {
            "name": "second",
            "priority": 60,
            "timeout_seconds": 45,
            "executor_kind": "command",
            "executor_ref": ["{python}", "b.py"],
            "active": True,
        }
    finally:
        await db_pool.execute("DELETE FROM leo_sub_agents WHERE code = $1", code)
