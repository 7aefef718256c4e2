"""The catalogue's env_passthrough column refuses the worker's secrets and non-names."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from leo.domain.snapshot import SubAgentSpec
from leo.sub_agents.environment import refused_names

INSERT = (
    "INSERT INTO leo_sub_agents (code, name, env_passthrough) VALUES ($1, 'env test', $2) "
    "RETURNING code, name, priority, depends_on, timeout_seconds, executor_kind, executor_ref, "
    "metadata, env_passthrough"
)


def new_code() -> str:
    return f"ENV_{uuid.uuid4().hex[:8].upper()}"


async def test_declared_names_reach_the_spec(db_pool: asyncpg.Pool) -> None:
    row = await db_pool.fetchrow(INSERT, new_code(), ["GH_TOKEN", "OPENAI_API_KEY"])
    assert SubAgentSpec.from_row(row).env_passthrough == ("GH_TOKEN", "OPENAI_API_KEY")
    default = await db_pool.fetchval(
        "INSERT INTO leo_sub_agents (code, name) VALUES ($1, 'x') RETURNING env_passthrough",
        new_code(),
    )
    assert default == []


@pytest.mark.parametrize(
    "names",
    [
        ["LEO_DATABASE_URL"],
        ["GH_TOKEN", "LEO_PAYLOAD_KEY_2"],
        ["TEMPORAL_API_KEY"],
        ["temporal_tls_key"],
        ["PGPASSWORD"],
        ["DATABASE_URL"],
        ["TMPDIR"],
    ],
)
async def test_a_worker_secret_cannot_be_declared(db_pool: asyncpg.Pool, names: list[str]) -> None:
    assert refused_names(names)  # the run-time check agrees with the table
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await db_pool.execute(INSERT, new_code(), names)
    assert err.value.constraint_name == "leo_sub_agents_env_passthrough_no_secrets"


@pytest.mark.parametrize("names", [[""], ["A B"], ["1X"], ["X", None], ["OK", "X=1"]])
async def test_a_non_name_cannot_be_declared(db_pool: asyncpg.Pool, names: list[str]) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await db_pool.execute(INSERT, new_code(), names)
    assert err.value.constraint_name == "leo_sub_agents_env_passthrough_names"
