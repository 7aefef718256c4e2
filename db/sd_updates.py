"""The thin Python side of `fn_update_sd` (db/functions/sd_update.sql) and its change record.

One call edits an SD's content and records the edit in `sd_changes`, or refuses with a stable
code and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from db.pool import Executor

# Codes fn_update_sd returns, beyond the transitions' SD_NOT_FOUND, CONCURRENT_LOCK,
# VERSION_CONFLICT and INVALID_INPUT.
TRANSITION_OWNED_FIELD = "TRANSITION_OWNED_FIELD"


class SdUpdateResult(BaseModel):
    """What `fn_update_sd` returned: the recorded changes, or a refusal."""

    model_config = ConfigDict(extra="allow", frozen=True)

    success: bool
    code: str
    error: str | None = None
    sd_id: str | None = None
    sd_key: str | None = None
    change_id: UUID | None = None
    # {"sd.title": {"from": ..., "to": ...}, "stories.KEY:US-002": {"from": null, "to": {...}}}
    changes: dict[str, Any] = Field(default_factory=dict)
    actor: str | None = None
    changed_at: datetime | None = None
    transition_version: int | None = None
    idempotent_hit: bool = False


class SdChangeRecord(BaseModel):
    """One row of `sd_changes`: an edit of the SD's content, by whom and when."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    actor: str
    changed_at: datetime
    changes: dict[str, Any]
    version_before: int
    version_after: int
    request_id: str | None
    # The database login that made the edit (session_user; None before migration 0011).
    db_role: str | None = None


async def call_update_sd(
    conn: Executor,
    sd_id: str,
    changes: dict[str, Any],
    *,
    actor: str,
    expected_version: int | None = None,
    request_id: str | None = None,
) -> SdUpdateResult:
    """Apply `changes` ({"sd": {...}, "prd": {...}, "stories": [...]}) in one transaction.
    Never raises for a refusal: read `.success` and `.code`."""
    raw = await conn.fetchval(
        "SELECT fn_update_sd(p_sd_id => $1, p_changes => $2, p_actor => $3, "
        "p_expected_version => $4, p_request_id => $5)",
        sd_id,
        changes,
        actor,
        expected_version,
        request_id,
    )
    return SdUpdateResult.model_validate(raw)


async def list_sd_changes(conn: Executor, canonical_sd_id: str) -> list[SdChangeRecord]:
    """The SD's content edits, oldest first."""
    rows = await conn.fetch(
        "SELECT id, actor, changed_at, changes, version_before, version_after, request_id, "
        "db_role FROM sd_changes WHERE sd_id = $1 ORDER BY changed_at, id",
        canonical_sd_id,
    )
    return [SdChangeRecord.model_validate(dict(row)) for row in rows]
