"""What the CLI reads and writes: SD specs, SD details, status and the transition audit trail.

Every function is one small async query (or one transaction) over a connection or pool from
`db.pool`, whose JSON codecs turn jsonb into Python values. Values are always bound; nothing a
caller passes is formatted into SQL. State changes of SDs go through the transition functions
(`db.transitions`), never through here: the only write is creating a new SD from a spec.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

# The same rules as the CHECK constraints in db/migrations/0001_schema.sql, so a bad file is
# refused with the field's name before anything reaches the database.
SD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
STORY_KEY_PATTERN = r"^[A-Z0-9-]+:US-[0-9]{3,}$"
STORY_KEY_PREFIX_PATTERN = r"^[A-Z0-9-]+$"

SdType = Literal[
    "feature",
    "bugfix",
    "database",
    "infrastructure",
    "security",
    "refactor",
    "documentation",
    "orchestrator",
    "performance",
    "enhancement",
    "docs",
    "discovery_spike",
    "implementation",
    "ux_debt",
    "uat",
]
Priority = Literal["critical", "high", "medium", "low"]
IntensityLevel = Literal["cosmetic", "structural", "architectural"]
PrdStatus = Literal[
    "draft",
    "planning",
    "in_progress",
    "testing",
    "verification",
    "approved",
    "completed",
    "archived",
    "rejected",
    "on_hold",
    "cancelled",
]
StoryStatus = Literal["draft", "ready", "in_progress", "testing", "completed", "blocked"]


def _check_sd_id(value: str) -> str:
    if not re.match(SD_ID_PATTERN, value):
        raise ValueError(
            "must be 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def _check_story_key(value: str) -> str:
    if not re.match(STORY_KEY_PATTERN, value):
        raise ValueError("must look like SD-KEY:US-001 (upper case, ':US-' and 3 or more digits)")
    return value


SdId = Annotated[str, AfterValidator(_check_sd_id)]
StoryKey = Annotated[str, AfterValidator(_check_story_key)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

Queryable: TypeAlias = asyncpg.Connection | asyncpg.Pool


# --- The spec `leo sd create` reads ---------------------------------------------------------


class StorySpec(BaseModel):
    """A user story. Without `story_key` it is `<sd_key>:US-<n>`, numbered in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    story_key: StoryKey | None = None
    title: Text
    acceptance_criteria: list[JsonValue] = Field(default_factory=list)
    status: StoryStatus = "draft"
    e2e_test_path: str | None = None


class PrdSpec(BaseModel):
    """The SD's product requirements document. Its id defaults to `PRD-<sd_key>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    title: Text
    status: PrdStatus = "draft"
    executive_summary: str = ""
    functional_requirements: list[JsonValue] = Field(default_factory=list)
    test_scenarios: list[JsonValue] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class SdSpec(BaseModel):
    """A new strategic directive with its PRD and stories, as written in a JSON or YAML file.

    Unknown fields are refused, so a misspelt field is an error rather than silently dropped.
    A new SD always starts as draft / LEAD_APPROVAL; handoffs move it on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sd_key: SdId
    id: SdId | None = None
    title: Text
    description: str = ""
    scope: str = ""
    rationale: str = ""
    category: str | None = None
    sd_type: SdType = "feature"
    priority: Priority = "medium"
    intensity_level: IntensityLevel | None = None
    target_application: str | None = None
    success_criteria: list[JsonValue] = Field(default_factory=list)
    success_metrics: list[JsonValue] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    prd: PrdSpec | None = None
    stories: list[StorySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _story_keys_are_derivable_and_unique(self) -> SdSpec:
        if any(s.story_key is None for s in self.stories) and not re.match(
            STORY_KEY_PREFIX_PATTERN, self.sd_key
        ):
            raise ValueError(
                f"stories need an explicit story_key (like KEY:US-001): one cannot be derived "
                f"from sd_key {self.sd_key!r}, which has characters other than A-Z, 0-9 and '-'"
            )
        keys = self.story_keys
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"stories repeat story_key {', '.join(duplicates)}")
        return self

    @property
    def prd_id(self) -> str | None:
        if self.prd is None:
            return None
        return self.prd.id or f"PRD-{self.sd_key}"

    @property
    def story_keys(self) -> list[str]:
        return [
            s.story_key or f"{self.sd_key}:US-{n:03d}" for n, s in enumerate(self.stories, start=1)
        ]


class SdWriteError(ValueError):
    """The database refused a new SD (a duplicate key, usually); nothing was written."""


# --- What the read queries return ------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class SdRecord(_Record):
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


class PrdRecord(_Record):
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


class StoryRecord(_Record):
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


class SdDetails(_Record):
    sd: SdRecord
    prd: PrdRecord | None
    stories: list[StoryRecord]


class ClaimRecord(_Record):
    """A session's claim on an SD, from `v_active_sessions` (stale after 300 s of silence)."""

    session_id: str
    track: str | None
    status: str
    computed_status: str
    heartbeat_at: datetime
    heartbeat_age_seconds: int
    claimed_at: datetime | None


class HandoffRecord(_Record):
    id: UUID
    handoff_type: str
    from_phase: str
    to_phase: str
    status: str
    validation_score: float | None
    validation_passed: bool | None
    request_id: str
    session_id: str | None
    rejection_reason: str | None
    created_at: datetime
    accepted_at: datetime | None
    rejected_at: datetime | None


class SdStatus(_Record):
    sd_id: str
    sd_key: str
    title: str
    sd_type: str
    status: str
    current_phase: str
    transition_version: int
    progress_percentage: int
    is_working_on: bool
    claiming_session_id: str | None
    claim: ClaimRecord | None
    handoffs: list[HandoffRecord] = Field(description="newest first")


class AuditEntry(_Record):
    """One `sd_transition_audit` row: a transition attempt, completed or failed."""

    id: UUID
    transition_type: str
    status: str
    request_id: str
    session_id: str | None
    handoff_id: UUID | None
    started_at: datetime
    completed_at: datetime | None
    pre_state: dict[str, Any]
    post_state: dict[str, Any] | None
    error_details: dict[str, Any] | None


class AuditTrail(_Record):
    sd_id: str
    sd_key: str
    entries: list[AuditEntry] = Field(description="oldest first")


# --- Queries -----------------------------------------------------------------------------------

_SD_COLUMNS = """id, sd_key, title, description, scope, rationale, category, sd_type, status,
    current_phase, priority, intensity_level, parent_sd_id, target_application, success_criteria,
    success_metrics, progress_percentage, is_working_on, active_session_id, claiming_session_id,
    transition_version, metadata, completion_date, created_at, updated_at"""


async def resolve_sd_id(conn: Queryable, ref: str) -> str | None:
    """The canonical id of the SD a user names by id or sd_key (the id wins if both match)."""
    value = await conn.fetchval(
        "SELECT id FROM strategic_directives_v2 WHERE id = $1 OR sd_key = $1 "
        "ORDER BY (id = $1) DESC LIMIT 1",
        ref,
    )
    return None if value is None else str(value)


async def get_sd(conn: Queryable, ref: str) -> SdRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_SD_COLUMNS} FROM strategic_directives_v2 WHERE id = $1 OR sd_key = $1 "
        "ORDER BY (id = $1) DESC LIMIT 1",
        ref,
    )
    return None if row is None else SdRecord.model_validate(dict(row))


async def get_sd_details(conn: Queryable, ref: str) -> SdDetails | None:
    """The SD, its PRD and its stories (in story-key order); None when no SD matches `ref`."""
    sd = await get_sd(conn, ref)
    if sd is None:
        return None
    prd = await conn.fetchrow(
        "SELECT id, sd_id, title, status, phase, executive_summary, functional_requirements, "
        "test_scenarios, progress, metadata, created_at, updated_at "
        "FROM product_requirements_v2 WHERE sd_id = $1",
        sd.id,
    )
    stories = await conn.fetch(
        "SELECT id, story_key, sd_id, prd_id, title, acceptance_criteria, status, "
        "validation_status, e2e_test_status, e2e_test_path, implementation_status, completed_by, "
        "completed_at FROM user_stories WHERE sd_id = $1 ORDER BY story_key",
        sd.id,
    )
    return SdDetails(
        sd=sd,
        prd=None if prd is None else PrdRecord.model_validate(dict(prd)),
        stories=[StoryRecord.model_validate(dict(row)) for row in stories],
    )


async def create_sd(conn: asyncpg.Connection, spec: SdSpec) -> SdDetails:
    """Insert the SD, its PRD and its stories in one transaction: all of them or nothing.

    Raises `SdWriteError` when the database refuses a row (an id or story key already taken).
    """
    try:
        async with conn.transaction():
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
            if spec.prd is not None:
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
            if spec.stories:
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
            details = await get_sd_details(conn, str(sd_id))
    except asyncpg.UniqueViolationError as exc:
        raise SdWriteError(_duplicate_message(exc, spec)) from exc
    except asyncpg.DataError as exc:
        message = " ".join(str(exc).split())
        raise SdWriteError(f"the database cannot store a value of this SD: {message}") from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        raise SdWriteError(f"the database refused the SD: {exc}{detail}") from exc
    assert details is not None
    return details


def _duplicate_message(exc: asyncpg.UniqueViolationError, spec: SdSpec) -> str:
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


async def get_sd_status(conn: Queryable, ref: str, *, handoff_limit: int = 10) -> SdStatus | None:
    """Phase, version, the live or stale claim and the latest handoffs; None for an unknown SD."""
    sd = await get_sd(conn, ref)
    if sd is None:
        return None
    claim = await conn.fetchrow(
        "SELECT session_id, track, status, computed_status, heartbeat_at, heartbeat_age_seconds, "
        "claimed_at FROM v_active_sessions WHERE sd_id = $1 AND status = 'active' "
        "ORDER BY heartbeat_at DESC LIMIT 1",
        sd.id,
    )
    handoffs = await conn.fetch(
        "SELECT id, handoff_type, from_phase, to_phase, status, validation_score, "
        "validation_passed, request_id, session_id, rejection_reason, created_at, accepted_at, "
        "rejected_at FROM sd_phase_handoffs WHERE sd_id = $1 "
        "ORDER BY created_at DESC, id DESC LIMIT $2",
        sd.id,
        handoff_limit,
    )
    return SdStatus(
        sd_id=sd.id,
        sd_key=sd.sd_key,
        title=sd.title,
        sd_type=sd.sd_type,
        status=sd.status,
        current_phase=sd.current_phase,
        transition_version=sd.transition_version,
        progress_percentage=sd.progress_percentage,
        is_working_on=sd.is_working_on,
        claiming_session_id=sd.claiming_session_id,
        claim=None if claim is None else ClaimRecord.model_validate(dict(claim)),
        handoffs=[HandoffRecord.model_validate(dict(row)) for row in handoffs],
    )


async def get_audit_trail(conn: Queryable, ref: str) -> AuditTrail | None:
    """Every transition attempt on the SD, oldest first, failed ones with their error record."""
    sd = await get_sd(conn, ref)
    if sd is None:
        return None
    rows = await conn.fetch(
        "SELECT id, transition_type, status, request_id, session_id, handoff_id, started_at, "
        "completed_at, pre_state, post_state, error_details FROM sd_transition_audit "
        "WHERE sd_id = $1 ORDER BY started_at, completed_at NULLS LAST, id",
        sd.id,
    )
    return AuditTrail(
        sd_id=sd.id,
        sd_key=sd.sd_key,
        entries=[AuditEntry.model_validate(dict(row)) for row in rows],
    )
