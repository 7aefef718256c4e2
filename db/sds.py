"""Strategic directives as the CLI, the API and the demo read and create them.

One small async function per query (or per transaction) over a connection or pool from
`db.pool`, whose JSON codecs turn jsonb into Python values. Values are always bound; nothing a
caller passes is formatted into SQL. An SD named by id or sd_key is resolved by the SQL function
`leo_resolve_sd_id` (db/functions/common.sql), the one place that rule lives. State changes of
SDs go through the transition functions (`db.transitions`), never through here: the only write
is creating a new SD from a spec.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel, ConfigDict

from db.pool import Executor
from leo.domain.sd_spec import SdSpec

# What a transaction runs on: a connection of its own or one acquired from a pool.
Connection = asyncpg.Connection | PoolConnectionProxy


class SdWriteError(ValueError):
    """The database refused a new SD (a duplicate key, usually); nothing was written."""


class Record(BaseModel):
    """A row as read: frozen."""

    model_config = ConfigDict(frozen=True)


class SdRecord(Record):
    id: str
    sd_key: str
    title: str
    description: str
    scope: str
    rationale: str
    category: str | None
    sd_type: str
    status: str
    current_phase: str
    priority: str
    intensity_level: str | None
    parent_sd_id: str | None
    target_application: str | None
    success_criteria: list[Any]
    success_metrics: list[Any]
    progress_percentage: int
    is_working_on: bool
    active_session_id: str | None
    claiming_session_id: str | None
    transition_version: int
    metadata: dict[str, Any]
    completion_date: datetime | None
    created_at: datetime
    updated_at: datetime


class PrdRecord(Record):
    id: str
    sd_id: str
    title: str
    status: str
    phase: str
    executive_summary: str
    functional_requirements: list[Any]
    test_scenarios: list[Any]
    progress: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class StoryRecord(Record):
    id: UUID
    story_key: str
    sd_id: str
    prd_id: str | None
    title: str
    acceptance_criteria: list[Any]
    status: str
    validation_status: str
    e2e_test_status: str
    e2e_test_path: str | None
    implementation_status: str
    completed_by: str | None
    completed_at: datetime | None


class SdDetails(Record):
    sd: SdRecord
    prd: PrdRecord | None
    stories: list[StoryRecord]


async def resolve_sd_id(conn: Executor, ref: str) -> str | None:
    """The canonical id of the SD a user names by id or sd_key (the id wins if both match)."""
    value = await conn.fetchval("SELECT leo_resolve_sd_id($1)", ref)
    return None if value is None else str(value)


async def get_sd(conn: Executor, ref: str) -> SdRecord | None:
    row = await conn.fetchrow(
        "SELECT id, sd_key, title, description, scope, rationale, category, sd_type, status, "
        "current_phase, priority, intensity_level, parent_sd_id, target_application, "
        "success_criteria, success_metrics, progress_percentage, is_working_on, "
        "active_session_id, claiming_session_id, transition_version, metadata, completion_date, "
        "created_at, updated_at FROM strategic_directives_v2 WHERE id = leo_resolve_sd_id($1)",
        ref,
    )
    return None if row is None else SdRecord.model_validate(dict(row))


async def get_prd(conn: Executor, sd_id: str) -> PrdRecord | None:
    row = await conn.fetchrow(
        "SELECT id, sd_id, title, status, phase, executive_summary, functional_requirements, "
        "test_scenarios, progress, metadata, created_at, updated_at "
        "FROM product_requirements_v2 WHERE sd_id = $1",
        sd_id,
    )
    return None if row is None else PrdRecord.model_validate(dict(row))


async def get_stories(conn: Executor, sd_id: str) -> list[StoryRecord]:
    rows = await conn.fetch(
        "SELECT id, story_key, sd_id, prd_id, title, acceptance_criteria, status, "
        "validation_status, e2e_test_status, e2e_test_path, implementation_status, completed_by, "
        "completed_at FROM user_stories WHERE sd_id = $1 ORDER BY story_key",
        sd_id,
    )
    return [StoryRecord.model_validate(dict(row)) for row in rows]


async def get_sd_details(conn: Executor, ref: str) -> SdDetails | None:
    """The SD, its PRD and its stories (in story-key order); None when no SD matches `ref`."""
    sd = await get_sd(conn, ref)
    if sd is None:
        return None
    return SdDetails(sd=sd, prd=await get_prd(conn, sd.id), stories=await get_stories(conn, sd.id))


async def create_sd(conn: Connection, spec: SdSpec) -> SdDetails:
    """Insert the SD, its PRD and its stories in one transaction: all of them or nothing.

    Raises `SdWriteError` when the database refuses a row (an id or story key already taken).
    """
    try:
        async with conn.transaction():
            sd_id = await insert_sd(conn, spec)
            if spec.prd is not None:
                await insert_prd(conn, spec, sd_id)
            if spec.stories:
                await insert_stories(conn, spec, sd_id)
            details = await get_sd_details(conn, sd_id)
    except asyncpg.UniqueViolationError as exc:
        raise SdWriteError(duplicate_message(exc, spec)) from exc
    except asyncpg.DataError as exc:
        message = " ".join(str(exc).split())
        raise SdWriteError(f"the database cannot store a value of this SD: {message}") from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        raise SdWriteError(f"the database refused the SD: {exc}{detail}") from exc
    assert details is not None
    return details


async def insert_sd(conn: Connection, spec: SdSpec) -> str:
    sd_id = await conn.fetchval(
        "INSERT INTO strategic_directives_v2 (id, sd_key, title, description, scope, "
        "rationale, category, sd_type, priority, intensity_level, target_application, "
        "success_criteria, success_metrics, metadata) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        spec.id,
        spec.sd_key,
        spec.title,
        spec.description,
        spec.scope,
        spec.rationale,
        spec.category,
        spec.sd_type,
        spec.priority,
        spec.intensity_level,
        spec.target_application,
        spec.success_criteria,
        spec.success_metrics,
        spec.metadata,
    )
    return str(sd_id)


async def insert_prd(conn: Connection, spec: SdSpec, sd_id: str) -> None:
    assert spec.prd is not None
    await conn.execute(
        "INSERT INTO product_requirements_v2 (id, sd_id, title, status, "
        "executive_summary, functional_requirements, test_scenarios, metadata) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        spec.prd_id,
        sd_id,
        spec.prd.title,
        spec.prd.status,
        spec.prd.executive_summary,
        spec.prd.functional_requirements,
        spec.prd.test_scenarios,
        spec.prd.metadata,
    )


async def insert_stories(conn: Connection, spec: SdSpec, sd_id: str) -> None:
    await conn.executemany(
        "INSERT INTO user_stories (story_key, sd_id, prd_id, title, "
        "acceptance_criteria, status, e2e_test_path) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (
                key,
                sd_id,
                spec.prd_id,
                story.title,
                story.acceptance_criteria,
                story.status,
                story.e2e_test_path,
            )
            for key, story in zip(spec.story_keys, spec.stories, strict=True)
        ],
    )


def duplicate_message(exc: asyncpg.UniqueViolationError, spec: SdSpec) -> str:
    """What a unique violation on creating `spec` means, in the SD file's terms."""
    constraint = exc.constraint_name or ""
    if constraint == "strategic_directives_v2_pkey":
        if spec.id is None:  # the id defaults to the sd_key
            return f"an SD with sd_key {spec.sd_key} already exists"
        return f"an SD with id {spec.id} already exists"
    if constraint == "strategic_directives_v2_sd_key_key":
        return f"an SD with sd_key {spec.sd_key} already exists"
    if constraint == "product_requirements_v2_pkey":
        return f"a PRD with id {spec.prd_id} already exists (set prd.id to another one)"
    if constraint == "user_stories_story_key_key":
        return f"a story key is already taken by another SD: {exc.detail or exc}"
    return f"{exc} ({exc.detail})" if exc.detail else str(exc)
